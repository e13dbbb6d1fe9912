#include "backend/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_dot.h"
#include "model/quant.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace fkv {

float rope_frequency(const RopeParams& p, int pair) {
  float freq = std::pow(p.theta, -2.0f * float(pair) / float(p.head_dim));
  if (!p.freq_factors.empty()) return freq / p.freq_factors[size_t(pair)];
  if (!p.llama3) return freq;
  // Llama 3: keep high frequencies, divide low ones by `factor`, blend smoothly in between.
  const float two_pi = 6.28318530717958647692f;
  const float wavelen = two_pi / freq;
  const float low_freq_wavelen = float(p.original_context) / p.low_freq_factor;
  const float high_freq_wavelen = float(p.original_context) / p.high_freq_factor;
  if (wavelen < high_freq_wavelen) return freq;
  if (wavelen > low_freq_wavelen) return freq / p.factor;
  const float smooth =
      (float(p.original_context) / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
  return (1.0f - smooth) * freq / p.factor + smooth * freq;
}

namespace cpu {

float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out) {
  for (int i = 0; i < n; ++i) {
    const float* xi = x + size_t(i) * dim;
    float* oi = out + size_t(i) * dim;
    const float mean_sq = dot(xi, xi, dim) / float(dim);
    const float scale = 1.0f / std::sqrt(mean_sq + eps);
    for (int j = 0; j < dim; ++j) oi[j] = xi[j] * scale * w[j];
  }
}

void matmul(ThreadPool& pool, GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, const float* x, int n,
            float* out) {
  const size_t row_size = row_bytes(type, cols);
  // Each weight row is decoded once and dotted with every token's activations.
  if (n == 1) {
    // Decode: a fused decode-and-dot reads each weight byte once, with no scratch row.
    pool.parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) out[r] = dot_quantized(type, w + row_size * size_t(r), x, cols);
    });
    return;
  }
  pool.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> decoded(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      dequantize_row(type, w + row_size * size_t(r), decoded.data(), cols);
      for (int i = 0; i < n; ++i) out[size_t(i) * rows + r] = dot(decoded.data(), x + size_t(i) * cols, cols);
    }
  });
}

void rope(float* x, int n, int n_heads, int pos0, const RopeParams& p) {
  const int pairs = p.head_dim / 2;
  std::vector<float> freq(static_cast<size_t>(pairs));
  for (int k = 0; k < pairs; ++k) freq[k] = rope_frequency(p, k);
  for (int i = 0; i < n; ++i) {
    const float pos = float(pos0 + i);
    for (int k = 0; k < pairs; ++k) {
      const float angle = pos * freq[k];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (size_t(i) * n_heads + h) * p.head_dim + 2 * k;
        const float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
      }
    }
  }
}

void store_rows(const float* src, int n, size_t row_len, KvType type, uint8_t* cache, size_t first_row) {
  const size_t count = size_t(n) * row_len;
  if (type == KvType::kF32) {
    float* dst = reinterpret_cast<float*>(cache) + first_row * row_len;
    for (size_t i = 0; i < count; ++i) dst[i] = src[i];
  } else {
    uint16_t* dst = reinterpret_cast<uint16_t*>(cache) + first_row * row_len;
    for (size_t i = 0; i < count; ++i) dst[i] = float_to_half(src[i]);
  }
}

// Converts `count` cache values starting at element `first` to fp32.
static void load_row(const uint8_t* cache, KvType type, size_t first, int count, float* dst) {
  if (type == KvType::kF32) {
    const float* src = reinterpret_cast<const float*>(cache) + first;
    for (int i = 0; i < count; ++i) dst[i] = src[i];
  } else {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(cache) + first;
    for (int i = 0; i < count; ++i) dst[i] = half_to_float(src[i]);
  }
}

void attention(ThreadPool& pool, const float* q, int n, int pos0, const AttentionShape& s, KvType type,
               const uint8_t* k_cache, const uint8_t* v_cache, float* out) {
  const int d = s.head_dim;
  const int group = s.n_heads / s.n_kv_heads;
  const size_t kv_row = size_t(s.n_kv_heads) * d;
  pool.parallel_for(int64_t(n) * s.n_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores, row(static_cast<size_t>(d)), acc(static_cast<size_t>(d));
    for (int64_t task = begin; task < end; ++task) {
      const int i = int(task / s.n_heads), h = int(task % s.n_heads), kvh = h / group;
      const int len = pos0 + i + 1;
      const float* qi = q + (size_t(i) * s.n_heads + h) * d;
      scores.resize(size_t(len));
      float max_score = -INFINITY;
      for (int t = 0; t < len; ++t) {
        load_row(k_cache, type, size_t(t) * kv_row + size_t(kvh) * d, d, row.data());
        scores[t] = dot(qi, row.data(), d) * s.scale;
        max_score = std::max(max_score, scores[t]);
      }
      float total = 0;
      for (int t = 0; t < len; ++t) total += scores[t] = std::exp(scores[t] - max_score);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int t = 0; t < len; ++t) {
        load_row(v_cache, type, size_t(t) * kv_row + size_t(kvh) * d, d, row.data());
        const float p = scores[t];
        for (int j = 0; j < d; ++j) acc[j] += p * row[j];
      }
      float* oi = out + (size_t(i) * s.n_heads + h) * d;
      for (int j = 0; j < d; ++j) oi[j] = acc[j] / total;
    }
  });
}

}  // namespace cpu
}  // namespace fkv
