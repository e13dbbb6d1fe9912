// Checking Vulkan results: every call's VkResult goes through vk_check, which throws fkv::Error naming the
// call, the result and what fkv was doing (kOutOfMemory for the out-of-memory results, kBackend otherwise).
#pragma once
#include <vulkan/vulkan.h>

#include <string>

namespace fkv {

const char* vk_result_name(VkResult r);

[[noreturn]] void vk_fail(VkResult r, const char* call, const std::string& what);

inline void vk_check(VkResult r, const char* call, const std::string& what) {
  if (r != VK_SUCCESS) vk_fail(r, call, what);
}

// The checked calls every submit path makes (the eager recorder's ring and the decode replay's segments);
// `what` names the object or the work in the error.
VkCommandBuffer allocate_command_buffer(VkDevice dev, VkCommandPool pool, const std::string& what);
VkFence create_fence(VkDevice dev, const std::string& what);  // unsignalled
void submit_command_buffer(VkQueue queue, VkCommandBuffer cmd, VkFence fence, const std::string& what);
// Waits for a submitted fence (in 10 s slices, so a long step is not taken for a hang); the second also
// resets it.
void wait_fence(VkDevice dev, VkFence fence, const std::string& what);
void wait_and_reset_fence(VkDevice dev, VkFence fence, const std::string& what);

}  // namespace fkv
