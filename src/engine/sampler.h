// Picks the next token from logits: greedy, or temperature with top-k / top-p, after a repetition penalty.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace fkv {

struct SamplerOptions {
  float temperature = 0.7f;  // <= 0: greedy (argmax)
  int top_k = 40;            // <= 0: no top-k cut
  float top_p = 0.95f;       // >= 1: no nucleus cut
  float repetition_penalty = 1.1f;  // 1: off; > 1 discourages the last repeat_last_n tokens
  int repeat_last_n = 64;
  uint64_t seed = 0;  // same seed, same logits: same tokens
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);  // throws kInvalidArgument for out-of-range options
  // Returns the chosen id and remembers it for the repetition penalty.
  int32_t sample(const std::vector<float>& logits);
  void accept(int32_t id);  // remember a token the model did not sample (e.g. the prompt)
  void reset();

  static int32_t argmax(const float* logits, int64_t n);

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<float> work_;
  std::vector<int32_t> ids_;
};

}  // namespace fkv
