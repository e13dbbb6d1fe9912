// Greedy decoding's argmax on the device (argmax.comp, Backend::argmax) against Sampler::argmax on the
// host: the first index of the largest value, NaN ignored, nothing when no value is above -inf; and
// Session::eval_argmax against the argmax of eval's logits through whole decode steps (replayed ones too).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "backend/vulkan/vulkan_backend.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "random_model_file.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

class ArgmaxTest : public VulkanTest {
 protected:
  std::optional<int32_t> on_device(const std::vector<float>& x) {
    BufferPtr b = vk->alloc(x.size() * 4, "argmax input");
    vk->upload(*b, 0, x.data(), x.size() * 4);
    return vk->argmax(*b, int64_t(x.size()));
  }
  // The device's answer is the host's (Sampler::argmax) whenever a value is above -inf.
  void expect_host_choice(const std::vector<float>& x, const char* what) {
    SCOPED_TRACE(what);
    const std::optional<int32_t> got = on_device(x);
    ASSERT_TRUE(got.has_value()) << "no index for " << x.size() << " values";
    EXPECT_EQ(*got, Sampler::argmax(x.data(), int64_t(x.size()))) << x.size() << " values";
  }
};

TEST_F(ArgmaxTest, FirstLargestValueAsTheHostPicksIt) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  // Sizes below, at and past the workgroup's strides (64 .. 1024 invocations, 4 loads each), a vocabulary.
  for (const size_t n :
       {size_t(1), size_t(3), size_t(255), size_t(1000), size_t(4099), size_t(49152), size_t(128256)}) {
    std::vector<float> x(n);
    for (float& v : x) v = normal(rng);
    expect_host_choice(x, "random");
    // Ties: the same largest value at a late and an early index (other invocations, the same one).
    if (n >= 3) {
      const float top = *std::max_element(x.begin(), x.end()) + 1.0f;
      x[n - 1] = top;
      x[n / 2] = top;
      expect_host_choice(x, "tie, late");
      x[1] = top;
      expect_host_choice(x, "tie, early");
    }
    // NaN everywhere but a few values: ignored, as the host ignores them.
    for (size_t i = 0; i < n; i += 3) x[i] = std::numeric_limits<float>::quiet_NaN();
    if (n >= 3) expect_host_choice(x, "NaN ignored");
  }
  // One finite value among -inf; the largest value at index 0; -0 and +0 tied (the first wins).
  std::vector<float> x(5000, -std::numeric_limits<float>::infinity());
  x[4321] = -1e30f;
  expect_host_choice(x, "one finite value");
  x[0] = 5.0f;
  expect_host_choice(x, "index 0");
  std::vector<float> zeros = {-1.0f, -0.0f, 0.0f, -2.0f};
  expect_host_choice(zeros, "signed zeros");
}

TEST_F(ArgmaxTest, NothingAboveMinusInfinityLeavesTheChoiceToTheHost) {
  EXPECT_FALSE(on_device(std::vector<float>(777, -std::numeric_limits<float>::infinity())).has_value());
  EXPECT_FALSE(on_device(std::vector<float>(777, std::numeric_limits<float>::quiet_NaN())).has_value());
  // The CPU backend does not take the argmax itself.
  BufferPtr b = cpu->alloc(16, "x");
  EXPECT_FALSE(cpu->argmax(*b, 4).has_value());
}

TEST_F(ArgmaxTest, EvalArgmaxPicksTheTokenEvalsLogitsGive) {
  RandomModelFile m(*vk, "small", GgmlType::Q4_0);
  SessionOptions so;
  so.ctx = 128;
  Session a(*m.model, so), b(*m.model, so);
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 33};
  int32_t ta = a.eval_argmax(prompt);
  const std::vector<float>& first = b.eval(prompt);
  int32_t tb = Sampler::argmax(first.data(), int64_t(first.size()));
  ASSERT_EQ(ta, tb) << "after the prompt";
  for (int i = 0; i < 40; ++i) {  // enough steps for the decode step to be recorded and replayed
    ta = a.eval_argmax(std::span(&ta, 1));
    const std::vector<float>& logits = b.eval(std::span(&tb, 1));
    tb = Sampler::argmax(logits.data(), int64_t(logits.size()));
    ASSERT_EQ(ta, tb) << "decode step " << i;
  }
  EXPECT_EQ(a.n_past(), b.n_past());
}

}  // namespace
}  // namespace fkv::test
