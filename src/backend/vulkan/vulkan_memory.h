// Vulkan buffers: device-local storage for weights, KV cache and activations, and host-visible buffers
// for the staging ring (uploads) and readback (downloads).
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/vulkan/vulkan_context.h"

namespace fkv {

enum class MemoryKind {
  kDevice,    // device-local, the GPU's own memory
  kUpload,    // host-visible and coherent, written by the CPU
  kReadback,  // host-visible, cached where the device offers it, read by the CPU
};

class VulkanBuffer : public DeviceBuffer {
 public:
  // Throws kOutOfMemory naming `what` when the device or host has no room.
  VulkanBuffer(std::shared_ptr<VulkanContext> ctx, size_t bytes, MemoryKind kind, const std::string& what);
  ~VulkanBuffer() override;

  VkBuffer handle() const { return buffer_; }
  // size() rounded up to whole 16-byte blocks: shaders may read a buffer by aligned uvec4s
  // (split_middle_fft.comp reads the kept rows so) without reaching past its end.
  VkDeviceSize capacity() const { return capacity_; }
  uint8_t* mapped() const { return mapped_; }  // host-visible kinds only
  // Unique in the process: tells a buffer from a later one that reuses its freed handle.
  uint64_t serial() const { return serial_; }
  // True while the buffer holds a Q4_0 weight repacked by upload_weight (model/quant.h Q4_0x8); a plain
  // upload into the buffer clears it.
  bool q4_0x8() const { return q4_0x8_; }
  void set_q4_0x8(bool on) { q4_0x8_ = on; }

 private:
  std::shared_ptr<VulkanContext> ctx_;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  VkDeviceSize capacity_ = 0;
  uint8_t* mapped_ = nullptr;
  uint64_t serial_ = 0;
  bool q4_0x8_ = false;
};

}  // namespace fkv
