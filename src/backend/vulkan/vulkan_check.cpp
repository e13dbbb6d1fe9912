#include "backend/vulkan/vulkan_check.h"

#include "util/error.h"

namespace fkv {

const char* vk_result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS:
      return "VK_SUCCESS";
    case VK_NOT_READY:
      return "VK_NOT_READY";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    case VK_INCOMPLETE:
      return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED:
      return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS:
      return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED:
      return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL:
      return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
      return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV:
      return "VK_ERROR_INVALID_SHADER_NV";
    default:
      return "VK_ERROR_(unknown)";
  }
}

void vk_fail(VkResult r, const char* call, const std::string& what) {
  const bool oom = r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY;
  throw Error(oom ? ErrorCode::kOutOfMemory : ErrorCode::kBackend,
              std::string(call) + " failed: " + vk_result_name(r) + " (" + std::to_string(int(r)) +
                  ") while " + what);
}

VkCommandBuffer allocate_command_buffer(VkDevice dev, VkCommandPool pool, const std::string& what) {
  VkCommandBufferAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  ai.commandPool = pool;
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  vk_check(vkAllocateCommandBuffers(dev, &ai, &cmd), "vkAllocateCommandBuffers", what);
  return cmd;
}

VkFence create_fence(VkDevice dev, const std::string& what) {
  VkFenceCreateInfo fci{};
  fci.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  VkFence fence = VK_NULL_HANDLE;
  vk_check(vkCreateFence(dev, &fci, nullptr, &fence), "vkCreateFence", what);
  return fence;
}

void submit_command_buffer(VkQueue queue, VkCommandBuffer cmd, VkFence fence, const std::string& what) {
  VkSubmitInfo si{};
  si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd;
  vk_check(vkQueueSubmit(queue, 1, &si, fence), "vkQueueSubmit", what);
}

void wait_fence(VkDevice dev, VkFence fence, const std::string& what) {
  VkResult r;
  do {
    r = vkWaitForFences(dev, 1, &fence, VK_TRUE, 10'000'000'000ull);
  } while (r == VK_TIMEOUT);
  vk_check(r, "vkWaitForFences", what);
}

void wait_and_reset_fence(VkDevice dev, VkFence fence, const std::string& what) {
  wait_fence(dev, fence, what);
  vk_check(vkResetFences(dev, 1, &fence), "vkResetFences", what);
}

}  // namespace fkv
