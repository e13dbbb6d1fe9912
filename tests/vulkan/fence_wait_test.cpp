// FenceWait (vulkan_fence_wait.h): it returns only once the fence is signalled, on each of its paths
// (the first wait with no prediction, a slept-then-polled wait, a wait longer than predicted that falls
// back to blocking, a fence signalled before the call), with polling on and off. The GPU's work is held
// back by an event the host sets after a delay, so the signal comes at a known time.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backend/vulkan/vulkan_check.h"
#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_fence_wait.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

using Clock = std::chrono::steady_clock;

class FenceWaitTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    messages_ = vulkan_validation_message_count();
    ctx_ = std::make_unique<VulkanContext>(-1);
    VkDevice dev = ctx_->device();
    VkCommandPoolCreateInfo pci{};
    pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pci.queueFamilyIndex = ctx_->queue_family();
    vk_check(vkCreateCommandPool(dev, &pci, nullptr, &pool_), "vkCreateCommandPool", "test");
    cmd_ = allocate_command_buffer(dev, pool_, "test");
    fence_ = create_fence(dev, "test");
    VkEventCreateInfo eci{};
    eci.sType = VK_STRUCTURE_TYPE_EVENT_CREATE_INFO;
    vk_check(vkCreateEvent(dev, &eci, nullptr, &event_), "vkCreateEvent", "test");
  }
  void TearDown() override {
    VkDevice dev = ctx_->device();
    vkDeviceWaitIdle(dev);
    vkDestroyEvent(dev, event_, nullptr);
    vkDestroyFence(dev, fence_, nullptr);
    vkDestroyCommandPool(dev, pool_, nullptr);
    ctx_.reset();
    EXPECT_EQ(vulkan_validation_message_count(), messages_) << "Vulkan validation messages";
  }

  // Submits work that waits for the event, sets the event delay_ms later, waits with `w` and returns the
  // milliseconds from the submit to the wait's return; the fence must be signalled when it returns.
  double run(FenceWait& w, int delay_ms) {
    VkDevice dev = ctx_->device();
    vk_check(vkResetEvent(dev, event_), "vkResetEvent", "test");
    VkCommandBufferBeginInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    vk_check(vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer", "test");
    vkCmdWaitEvents(cmd_, 1, &event_, VK_PIPELINE_STAGE_HOST_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0,
                    nullptr, 0, nullptr, 0, nullptr);
    vk_check(vkEndCommandBuffer(cmd_), "vkEndCommandBuffer", "test");
    submit_command_buffer(ctx_->queue(), cmd_, fence_, "test");
    // The clock starts before the setter thread does, so the event is set no earlier than t0 + delay_ms
    // however late this thread is scheduled again (on a loaded CI runner it once was by 1.3 ms).
    const auto t0 = Clock::now();
    std::thread setter([&] {
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      vkSetEvent(dev, event_);
    });
    if (delay_ms == 0) setter.join();  // signalled (or about to be) before the wait starts
    w.wait(dev, fence_, "test");
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    EXPECT_EQ(vkGetFenceStatus(dev, fence_), VK_SUCCESS) << "returned before the fence was signalled";
    if (setter.joinable()) setter.join();
    vk_check(vkResetFences(dev, 1, &fence_), "vkResetFences", "test");
    return ms;
  }

  uint64_t messages_ = 0;
  std::unique_ptr<VulkanContext> ctx_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkEvent event_ = VK_NULL_HANDLE;
};

TEST_P(FenceWaitTest, ReturnsOnlyOnceSignalledOnEveryPath) {
  FenceWait w(GetParam());
  EXPECT_GE(run(w, 5), 4.0);  // no prediction yet: polls up to 1 ms, then blocks
  EXPECT_GE(run(w, 5), 4.0);  // predicted: sleeps, then polls
  EXPECT_GE(run(w, 5), 4.0);
  EXPECT_GE(run(w, 20), 19.0);  // longer than predicted: polls past the prediction, then blocks
  run(w, 0);                    // already signalled: the next prediction is short
  EXPECT_GE(run(w, 5), 4.0);
}

INSTANTIATE_TEST_SUITE_P(PollOrBlock, FenceWaitTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Poll" : "Block"; });

}  // namespace
}  // namespace fkv::test
