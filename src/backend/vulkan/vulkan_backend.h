// The Vulkan backend: the ops of backend.h as GLSL compute shaders, on any Vulkan 1.1 device (NVIDIA, AMD,
// Intel, Mesa's lavapipe). Environment: FKV_VULKAN_DEVICE=N picks device N of vulkan_list_devices() when
// the caller passes -1; FKV_VULKAN_VALIDATE=1 turns on VK_LAYER_KHRONOS_validation and counts its messages;
// FKV_VULKAN_PROFILE=1 times every dispatch, =phases every phase between barriers (vulkan_profile below).
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
// Turns a Vulkan backend's fused dispatches (add + RMSNorm; RoPE of q and K + the store of K and V; decode
// matvecs of one x, with a SwiGLU of gate and up folded in) on or off, after recording what is held;
// FKV_VULKAN_FUSE=0 starts it off. For comparing the two in one program.
void vulkan_set_fusion(Backend& backend, bool on);
// Whether a Vulkan backend's decode folds each residual add and the RMSNorm after it into the matvec before
// them (matvec_add_norm.comp; fusion on, FKV_VULKAN_NORM_FOLD not 0, a GPU or FKV_VULKAN_GPU_KERNELS, 64-bit
// buffer atomics): o and down then carry the add and the norm's sum of squares, and the matvecs that read
// the norm apply its scale. False for other backends.
bool vulkan_norm_fold(const Backend& backend);
// Sets how many chunk workgroups a Vulkan backend's attention aims for in all (vulkan_attention_plan.h);
// 0 restores the default (FKV_VULKAN_ATTN_GROUPS, else by device type). No-op for other backends. For tests
// that run the GPU's split on lavapipe.
void vulkan_set_attention_target(Backend& backend, uint32_t target);
// Frees a Vulkan backend's scratch buffers (RoPE table, attention partials); the next ops allocate them
// again. For tests of steps whose buffers change.
void vulkan_drop_scratch(Backend& backend);

// The GPU profile (FKV_VULKAN_PROFILE=1, or vulkan_set_profile): per shader, the dispatches timed by
// timestamp queries and their total GPU time; the decode replay is off while profiling. docs/VULKAN.md.
// Two modes: kDispatches times every dispatch alone (a stamp before and after it, so dispatches that share
// a barrier interval run one after another); kPhases (FKV_VULKAN_PROFILE=phases) puts one stamp at each
// barrier and times the phases between barriers as they run (nothing serialized): what each phase costs the
// step, its launches, ramp and drain included. A phase is named by its commands (shader names, "copy",
// "position") joined by " + ", and counted under that name.
enum class VulkanProfileMode { kDispatches, kPhases };
struct VulkanShaderTime {
  std::string name;         // the shader's file name without .comp; kPhases: the phase's commands
  uint64_t calls = 0;       // dispatches; kPhases: phases
  uint64_t dispatches = 0;  // dispatches counted under it (kDispatches: calls)
  double total_us = 0;
};
struct VulkanProfile {
  bool on = false;  // profiling (false: not Vulkan, not asked, or no timestamps)
  VulkanProfileMode mode = VulkanProfileMode::kDispatches;
  std::vector<VulkanShaderTime> shaders;  // largest total first
  uint64_t dispatches = 0;                // timed (kPhases: in a timed phase)
  uint64_t untimed = 0;  // past a command buffer's queries (none expected); kPhases: barriers not stamped
  uint64_t command_buffers = 0;
  double dispatch_us = 0;  // sum of the dispatches' times (kPhases: of the phases')
  double busy_us = 0;      // union of the command buffers' first-to-last timestamp intervals
  double span_us = 0;      // first timestamp to last, idle time between submits included
};
// Starts (fresh totals) or stops profiling a Vulkan backend between steps; returns whether it profiles.
// False for other backends and for devices without timestamp queries (a line on stderr says so).
bool vulkan_set_profile(Backend& backend, bool on, VulkanProfileMode mode = VulkanProfileMode::kDispatches);
// Finishes the recorded work and returns the totals so far ({} when not profiling).
VulkanProfile vulkan_profile(Backend& backend);
// Prints the profile table to stderr now (nothing when not profiling). A profiling backend also prints it
// when destroyed if dispatches were timed since the last print.
void vulkan_print_profile(Backend& backend);

// Validation-layer warnings and errors seen by this process (FKV_VULKAN_VALIDATE=1); tests expect zero.
uint64_t vulkan_validation_message_count();

}  // namespace fkv
