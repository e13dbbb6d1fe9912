#include "backend/vulkan/vulkan_fence_wait.h"

#include <chrono>

#include "backend/vulkan/vulkan_check.h"

namespace fkv {
namespace {

using Clock = std::chrono::steady_clock;

// Slept waits end up to a few tens of microseconds late (timer slack, the wake-up); polling starts this
// long before the predicted signal.
constexpr double kMarginUs = 200;
// Polling past the prediction by more than this falls back to a blocking wait.
constexpr double kPollLimitUs = 1000;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

}  // namespace

void FenceWait::wait(VkDevice dev, VkFence fence, const std::string& what) {
  if (!poll_) return wait_fence(dev, fence, what);
  const auto t0 = Clock::now();
  const double sleep_us = expected_us_ - kMarginUs;
  if (sleep_us > 0) {
    const VkResult r = vkWaitForFences(dev, 1, &fence, VK_TRUE, uint64_t(sleep_us * 1000));
    if (r == VK_SUCCESS) {  // earlier than predicted: the next wait sleeps less
      expected_us_ = us_since(t0);
      return;
    }
    if (r != VK_TIMEOUT) vk_check(r, "vkWaitForFences", what);
  }
  for (;;) {
    const VkResult r = vkGetFenceStatus(dev, fence);
    if (r == VK_SUCCESS) break;
    if (r != VK_NOT_READY) vk_check(r, "vkGetFenceStatus", what);
    if (us_since(t0) > expected_us_ + kPollLimitUs) {
      wait_fence(dev, fence, what);
      break;
    }
  }
  expected_us_ = us_since(t0);
}

}  // namespace fkv
