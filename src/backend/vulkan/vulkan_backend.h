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

// Validation-layer warnings and errors seen by this process (FKV_VULKAN_VALIDATE=1); tests expect zero.
uint64_t vulkan_validation_message_count();

}  // namespace fkv
