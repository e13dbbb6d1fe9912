// The Vulkan backend: the ops of backend.h as GLSL compute shaders, on any Vulkan 1.1 device (NVIDIA, AMD,
// Intel, Mesa's lavapipe). Environment: FKV_VULKAN_DEVICE=N picks device N of vulkan_list_devices() when
// the caller passes -1; FKV_VULKAN_VALIDATE=1 turns on VK_LAYER_KHRONOS_validation and counts its messages.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace fkv {

// device -1: FKV_VULKAN_DEVICE, else the best device (discrete > integrated > virtual > CPU).
// Throws kBackend when there is no Vulkan driver or no device with a compute queue.
std::unique_ptr<Backend> create_vulkan_backend(int device);

// True when a Vulkan device that is not a CPU implementation exists. Never throws.
bool vulkan_has_gpu();

// One line per device, in the order FKV_VULKAN_DEVICE / --device index them: "0: NAME (discrete GPU, ...)".
// Empty when there is no Vulkan driver. Never throws.
std::vector<std::string> vulkan_list_devices();

// The decode replay of a Vulkan backend (vulkan_decode_replay.h): steps replayed so far, and the size of the
// recorded step. All zero for a backend that is not Vulkan. FKV_VULKAN_REPLAY=0 turns replay off.
struct VulkanReplayInfo {
  uint64_t replays = 0;
  uint32_t commands = 0, dispatches = 0, barriers = 0, segments = 0;
};
VulkanReplayInfo vulkan_replay_info(const Backend& backend);
// Turns the decode replay of a Vulkan backend on or off (no-op for others), between steps.
void vulkan_set_replay(Backend& backend, bool on);
// Frees a Vulkan backend's scratch buffers (RoPE table, attention partials); the next ops allocate them
// again. For tests of steps whose buffers change.
void vulkan_drop_scratch(Backend& backend);

// Validation-layer warnings and errors seen by this process (FKV_VULKAN_VALIDATE=1); tests expect zero.
uint64_t vulkan_validation_message_count();

}  // namespace fkv
