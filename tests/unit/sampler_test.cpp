#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <vector>

#include "util/error.h"

namespace fkv {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return std::vector<float>(v); }

TEST(Sampler, GreedyTakesTheArgmax) {
  SamplerOptions o;
  o.temperature = 0;
  o.repetition_penalty = 1;
  Sampler s(o);
  EXPECT_EQ(s.sample(logits_of({0.1f, 3.0f, -1.0f, 2.9f})), 1);
}

// Sampler::argmax is a blocked search; it must give std::max_element's answer: the first index of the
// largest value, NaNs ignored, ties to the first, -inf-only and all-NaN rows, every length around the block
// and lane sizes.
TEST(Sampler, ArgmaxAgreesWithMaxElement) {
  const auto reference = [](const std::vector<float>& v) {
    return v.empty() ? 0 : int32_t(std::max_element(v.begin(), v.end()) - v.begin());
  };
  uint32_t state = 12345;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return float(int32_t(state >> 9) % 1000) * 0.01f;  // many ties
  };
  for (int64_t n : {0, 1, 2, 15, 16, 17, 1023, 1024, 1025, 2049, 128256}) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = next();
    EXPECT_EQ(Sampler::argmax(v.data(), n), reference(v)) << n;
    if (n > 3) {
      v[size_t(n / 2)] = NAN;
      v[size_t(n - 1)] = 1e9f;  // the last index wins
      EXPECT_EQ(Sampler::argmax(v.data(), n), n - 1) << n;
      v[1] = 1e9f;  // a tie: the first wins
      EXPECT_EQ(Sampler::argmax(v.data(), n), 1) << n;
    }
    std::fill(v.begin(), v.end(), -INFINITY);
    EXPECT_EQ(Sampler::argmax(v.data(), n), reference(v)) << n;
    if (n > 3) {  // signed zeros compare equal: the first of them wins, NaN lanes before them or not
      v[0] = NAN;
      v[size_t(n - 2)] = -0.0f;
      v[size_t(n - 1)] = 0.0f;
      EXPECT_EQ(Sampler::argmax(v.data(), n), n - 2) << n;  // (max_element would stop at the leading NaN)
    }
    std::fill(v.begin(), v.end(), NAN);
    EXPECT_EQ(Sampler::argmax(v.data(), n), reference(v)) << n;
  }
}

TEST(Sampler, SameSeedSameTokens) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.seed = 42;
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(i % 7) * 0.3f;
  Sampler a(o), b(o);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(logits));
    tb.push_back(b.sample(logits));
  }
  EXPECT_EQ(ta, tb);
  a.reset();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits), ta[size_t(i)]);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplerOptions o;
  o.temperature = 5.0f;
  o.top_k = 1;
  o.repetition_penalty = 1;
  Sampler s(o);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits_of({1.0f, 1.5f, 1.4f})), 1);
}

TEST(Sampler, TinyTopPKeepsOnlyTheMostLikely) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 0.01f;
  o.repetition_penalty = 1;
  Sampler s(o);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits_of({0.0f, 0.2f, 0.1f})), 1);
}

TEST(Sampler, RespectsTheDistribution) {
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.repetition_penalty = 1;
  o.seed = 7;
  Sampler s(o);
  // p = softmax(log 1, log 3) = (0.25, 0.75)
  const std::vector<float> logits = {0.0f, std::log(3.0f)};
  int ones = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) ones += s.sample(logits);
  EXPECT_NEAR(double(ones) / n, 0.75, 0.03);
}

TEST(Sampler, RepetitionPenaltyDiscouragesRecentTokens) {
  SamplerOptions o;
  o.temperature = 0;
  o.repetition_penalty = 2.0f;
  Sampler s(o);
  s.accept(0);
  // 3.0 / 2 = 1.5 < 2.0: token 1 wins once token 0 was seen.
  EXPECT_EQ(s.sample(logits_of({3.0f, 2.0f})), 1);
}

TEST(Sampler, RejectsBadOptions) {
  SamplerOptions o;
  o.top_p = 0;
  EXPECT_THROW(Sampler{o}, Error);
  o = SamplerOptions{};
  o.repetition_penalty = -1;
  EXPECT_THROW(Sampler{o}, Error);
  Sampler ok{SamplerOptions{}};
  EXPECT_THROW(ok.sample({}), Error);
}

}  // namespace
}  // namespace fkv
