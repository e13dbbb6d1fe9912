// The Vulkan instance, the chosen physical device, its logical device and compute queue, and the limits
// the rest of the backend respects. Shared (shared_ptr) by everything that holds Vulkan objects, so that
// buffers outliving the backend object still free their memory before the device goes away.
#pragma once
#include <vulkan/vulkan.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fkv {

class VulkanContext {
 public:
  // device -1: FKV_VULKAN_DEVICE, else the best device. Throws kBackend when none is usable.
  explicit VulkanContext(int device);
  ~VulkanContext();
  VulkanContext(const VulkanContext&) = delete;
  VulkanContext& operator=(const VulkanContext&) = delete;

  VkDevice device() const { return device_; }
  VkPhysicalDevice physical() const { return physical_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  const VkPhysicalDeviceProperties& properties() const { return props_; }
  const VkPhysicalDeviceMemoryProperties& memory_properties() const { return mem_props_; }
  std::string device_name() const { return props_.deviceName; }

  // The largest range one storage-buffer binding may cover (maxStorageBufferRange, capped at 1 GiB so that
  // byte addresses inside a binding fit in 32 bits with room to spare), and the offset alignment.
  VkDeviceSize max_binding() const { return max_binding_; }
  VkDeviceSize binding_alignment() const { return binding_alignment_; }
  uint32_t max_workgroup_size() const { return props_.limits.maxComputeWorkGroupInvocations; }
  // Bits of a timestamp query on the compute queue's family (0: no timestamps there), and nanoseconds per
  // tick (VkPhysicalDeviceLimits::timestampPeriod).
  uint32_t timestamp_valid_bits() const { return timestamp_bits_; }
  float timestamp_period_ns() const { return props_.limits.timestampPeriod; }

  // Whether the backend runs its CPU-device kernels (one row per invocation, CPU-sized splits): a CPU device
  // (lavapipe) unless FKV_VULKAN_GPU_KERNELS is set, which the tests use to run the GPU configuration there.
  bool cpu_kernels() const {
    return props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU && !std::getenv("FKV_VULKAN_GPU_KERNELS");
  }

  // Subgroup arithmetic (subgroupAdd) in compute shaders, as the device reports it (Vulkan 1.1 subgroup
  // properties); FKV_VULKAN_SUBGROUP=0 turns it off to run the shared-memory fallbacks.
  bool subgroup_arithmetic() const { return subgroup_arithmetic_; }

  // 64-bit integer atomics on storage buffers (shaderInt64 and VK_KHR_shader_atomic_int64's
  // shaderBufferInt64Atomics), enabled when the device has them.
  bool int64_atomics() const { return int64_atomics_; }

  // VK_KHR_push_descriptor when the device has it (nullptr otherwise: descriptor sets from a pool).
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_fn() const { return push_descriptor_; }

  // FKV_VULKAN_PIPELINE_STATS=1 on a device with VK_KHR_pipeline_executable_properties: the driver's
  // statistics of each compute pipeline (registers, local memory, ... as the driver names them), printed by
  // PipelineCache when it creates one. Null otherwise.
  PFN_vkGetPipelineExecutablePropertiesKHR executable_properties_fn() const { return executable_properties_; }
  PFN_vkGetPipelineExecutableStatisticsKHR executable_statistics_fn() const { return executable_statistics_; }

  // Buffers released while the GPU may still use them: destroyed by collect_garbage() after a fence wait.
  void retire(VkBuffer buffer, VkDeviceMemory memory);
  // Whether `buffer` was released and awaits collect_garbage().
  bool retired(VkBuffer buffer);
  void collect_garbage();

 private:
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  uint32_t timestamp_bits_ = 0;
  VkPhysicalDeviceProperties props_{};
  VkPhysicalDeviceMemoryProperties mem_props_{};
  VkDeviceSize max_binding_ = 0;
  VkDeviceSize binding_alignment_ = 16;
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_ = nullptr;
  PFN_vkGetPipelineExecutablePropertiesKHR executable_properties_ = nullptr;
  PFN_vkGetPipelineExecutableStatisticsKHR executable_statistics_ = nullptr;
  bool subgroup_arithmetic_ = false;
  bool int64_atomics_ = false;
  std::mutex garbage_mutex_;
  std::vector<std::pair<VkBuffer, VkDeviceMemory>> garbage_;
};

}  // namespace fkv
