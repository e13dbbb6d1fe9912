// Waiting for the end of a step without sleeping past it.
//
// A blocking vkWaitForFences returns some tens of microseconds after the GPU signals (the thread is woken
// by the driver), and in decode the GPU then idles until the host has read the logits, sampled and issued
// the next step's first commands. FenceWait sleeps through most of the expected wait (the last wait's
// length minus a margin) and polls the fence for the rest, so it returns within a poll of the signal, at the
// cost of a core busy for about the margin per wait. A wait that outlasts its prediction by far (the first
// of a prefill, say) stops polling and blocks. CPU devices (lavapipe) never poll: the polling core is one
// the device's own threads need.
#pragma once
#include <vulkan/vulkan.h>

#include <string>

namespace fkv {

class FenceWait {
 public:
  explicit FenceWait(bool poll) : poll_(poll) {}

  // Returns once `fence` (submitted) is signalled; does not reset it.
  void wait(VkDevice dev, VkFence fence, const std::string& what);

 private:
  bool poll_;
  double expected_us_ = 0;  // the last wait's length
};

}  // namespace fkv
