#include "backend/vulkan/vulkan_memory.h"

#include <atomic>

#include "backend/vulkan/vulkan_check.h"
#include "util/error.h"

namespace fkv {
namespace {

// The first memory type allowed by `bits` that has all of `want`; -1 if none.
int find_memory_type(const VkPhysicalDeviceMemoryProperties& p, uint32_t bits, VkMemoryPropertyFlags want) {
  for (uint32_t i = 0; i < p.memoryTypeCount; ++i)
    if ((bits & (1u << i)) && (p.memoryTypes[i].propertyFlags & want) == want) return int(i);
  return -1;
}

int choose_memory_type(const VkPhysicalDeviceMemoryProperties& p, uint32_t bits, MemoryKind kind) {
  int t = -1;
  switch (kind) {
    case MemoryKind::kDevice:
      t = find_memory_type(p, bits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
      if (t < 0) t = find_memory_type(p, bits, 0);
      break;
    case MemoryKind::kUpload:
      t = find_memory_type(p, bits,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
      break;
    case MemoryKind::kReadback:
      t = find_memory_type(p, bits,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                               VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
      if (t < 0)
        t = find_memory_type(p, bits,
                             VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
      break;
  }
  return t;
}

}  // namespace

VulkanBuffer::VulkanBuffer(std::shared_ptr<VulkanContext> ctx, size_t bytes, MemoryKind kind,
                           const std::string& what)
    : DeviceBuffer(bytes), ctx_(std::move(ctx)) {
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial.fetch_add(1);
  capacity_ = (VkDeviceSize(bytes) + 15) / 16 * 16;
  if (capacity_ == 0) capacity_ = 16;
  const std::string desc = "allocating " + std::to_string(bytes) + " bytes for " + what;
  VkDevice dev = ctx_->device();

  VkBufferCreateInfo bci{};
  bci.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  bci.size = capacity_;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
              VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  vk_check(vkCreateBuffer(dev, &bci, nullptr, &buffer_), "vkCreateBuffer", desc);

  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(dev, buffer_, &req);
  const int type = choose_memory_type(ctx_->memory_properties(), req.memoryTypeBits, kind);
  if (type < 0) {
    vkDestroyBuffer(dev, buffer_, nullptr);
    throw Error(ErrorCode::kBackend, "no suitable Vulkan memory type while " + desc);
  }
  VkMemoryAllocateInfo mai{};
  mai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = uint32_t(type);
  VkResult r = vkAllocateMemory(dev, &mai, nullptr, &memory_);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(dev, buffer_, nullptr);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ||
        r == VK_ERROR_TOO_MANY_OBJECTS)
      throw Error(ErrorCode::kOutOfMemory,
                  std::string("vkAllocateMemory failed: ") + vk_result_name(r) + ": out of memory " + desc);
    vk_fail(r, "vkAllocateMemory", desc);
  }
  r = vkBindBufferMemory(dev, buffer_, memory_, 0);
  if (r == VK_SUCCESS && kind != MemoryKind::kDevice) {
    void* p = nullptr;
    r = vkMapMemory(dev, memory_, 0, VK_WHOLE_SIZE, 0, &p);
    mapped_ = static_cast<uint8_t*>(p);
  }
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(dev, buffer_, nullptr);
    vkFreeMemory(dev, memory_, nullptr);
    vk_fail(r, "vkBindBufferMemory/vkMapMemory", desc);
  }
}

VulkanBuffer::~VulkanBuffer() {
  // Commands recorded but not yet finished may still read this buffer: free it after the next fence.
  ctx_->retire(buffer_, memory_);
}

}  // namespace fkv
