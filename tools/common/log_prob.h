// Negative log-likelihood of a target under logits, in double: perplexity sums many of these.
#pragma once
#include <cmath>
#include <cstdint>

namespace fkv::tools {

inline double token_nll(const float* logits, int64_t vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  return mx + std::log(sum) - double(logits[target]);
}

}  // namespace fkv::tools
