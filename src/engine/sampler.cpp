#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "util/error.h"

namespace fkv {

Sampler::Sampler(const SamplerOptions& o) : o_(o), rng_(o.seed) {
  require(std::isfinite(o.temperature), ErrorCode::kInvalidArgument, "temperature must be finite");
  require(o.top_p > 0, ErrorCode::kInvalidArgument,
          "top-p must be in (0, 1]");
  require(o.repetition_penalty > 0, ErrorCode::kInvalidArgument, "repetition penalty must be positive");
  require(o.repeat_last_n >= 0, ErrorCode::kInvalidArgument, "repeat_last_n must not be negative");
}

void Sampler::reset() {
  rng_.seed(o_.seed);
  recent_.clear();
}

void Sampler::accept(int32_t id) {
  if (o_.repeat_last_n == 0) return;
  recent_.push_back(id);
  while (int(recent_.size()) > o_.repeat_last_n) recent_.pop_front();
}

// The first index of the largest value, as std::max_element (NaNs never win unless all are NaN). Greedy
// decode runs this on 128K logits every token while the GPU waits for the next one: max_element's compare
// chain took 136 us there (-O3), a tenth of a millisecond of a 3.6 ms 8B token. Here the lanes of a block
// keep independent maxima, and only the first block that holds the overall maximum is searched for its index.
// On x86 the lanes are four SSE registers: GCC had kept the 16 lanes in scalar registers (maxss), 28-29 us
// for 128256 values against 8.5-13 us for the SSE loop (-O3, the development VM). MAXPS(x, lane) is x > lane ? x : lane lane by
// lane, the scalar expression's exact meaning (a NaN x keeps lane).
namespace {
float block_max(const float* logits, int64_t b0, int64_t b1) {
  constexpr int kLanes = 16;
  int64_t i = b0;
#if defined(__SSE2__)
  __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  for (; i + kLanes <= b1; i += kLanes) {
    m0 = _mm_max_ps(_mm_loadu_ps(logits + i), m0);
    m1 = _mm_max_ps(_mm_loadu_ps(logits + i + 4), m1);
    m2 = _mm_max_ps(_mm_loadu_ps(logits + i + 8), m2);
    m3 = _mm_max_ps(_mm_loadu_ps(logits + i + 12), m3);
  }
  float lane[kLanes];
  _mm_storeu_ps(lane, m0);
  _mm_storeu_ps(lane + 4, m1);
  _mm_storeu_ps(lane + 8, m2);
  _mm_storeu_ps(lane + 12, m3);
#else
  float lane[kLanes];
  for (float& l : lane) l = -INFINITY;
  for (; i + kLanes <= b1; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] = logits[i + k] > lane[k] ? logits[i + k] : lane[k];
#endif
  float m = -INFINITY;
  for (float l : lane) m = l > m ? l : m;
  for (; i < b1; ++i) m = logits[i] > m ? logits[i] : m;
  return m;
}
}  // namespace

int32_t Sampler::argmax(const float* logits, int64_t n) {
  constexpr int64_t kBlock = 1024;
  float best = 0;
  int64_t best_block = -1;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const float m = block_max(logits, b0, std::min(n, b0 + kBlock));
    if (best_block < 0 ? m > -INFINITY : m > best) {
      best = m;
      best_block = b0;
    }
  }
  if (best_block < 0) return n > 0 ? int32_t(std::max_element(logits, logits + n) - logits) : 0;
  for (int64_t j = best_block; j < n; ++j)
    if (logits[j] == best) return int32_t(j);
  return 0;  // not reached: the block holds best
}

int32_t Sampler::sample(const std::vector<float>& logits) {
  require(!logits.empty(), ErrorCode::kInvalidArgument, "no logits to sample from");
  work_ = logits;
  if (o_.repetition_penalty != 1.0f) {
    // As in CTRL: shrink positive logits and push negative ones further down, once per distinct token.
    std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    for (int32_t id : seen) {
      if (id < 0 || size_t(id) >= work_.size()) continue;
      float& l = work_[size_t(id)];
      l = l > 0 ? l / o_.repetition_penalty : l * o_.repetition_penalty;
    }
  }
  int32_t chosen;
  if (o_.temperature <= 0) {
    chosen = argmax(work_.data(), int64_t(work_.size()));
  } else {
    ids_.resize(work_.size());
    std::iota(ids_.begin(), ids_.end(), 0);
    size_t keep = ids_.size();
    auto by_logit = [&](int32_t a, int32_t b) { return work_[size_t(a)] > work_[size_t(b)]; };
    if (o_.top_k > 0 && size_t(o_.top_k) < keep) {
      keep = size_t(o_.top_k);
      std::partial_sort(ids_.begin(), ids_.begin() + keep, ids_.end(), by_logit);
    } else {
      std::sort(ids_.begin(), ids_.end(), by_logit);
    }
    // Softmax over the survivors at the given temperature.
    std::vector<double> p(keep);
    const double top = work_[size_t(ids_[0])];
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += p[i] = std::exp((work_[size_t(ids_[i])] - top) / o_.temperature);
    if (o_.top_p < 1.0f) {
      double cumulative = 0;
      size_t cut = keep;
      for (size_t i = 0; i < keep; ++i) {
        cumulative += p[i] / total;
        if (cumulative >= o_.top_p) {
          cut = i + 1;
          break;
        }
      }
      keep = cut;
      total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
    }
    std::uniform_real_distribution<double> uniform(0.0, total);
    double r = uniform(rng_);
    chosen = ids_[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      if (r < p[i]) {
        chosen = ids_[i];
        break;
      }
      r -= p[i];
    }
  }
  accept(chosen);
  return chosen;
}

}  // namespace fkv
