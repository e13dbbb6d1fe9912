#include "model/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/half.h"

namespace fkv {

namespace {

// Block structs with ggml's exact byte layout (all members are byte arrays or uint16, no padding).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// Branch-free f16 -> f32 for the hot loops (util/half.h branches per value). Normal and subnormal halves
// both come out right from one multiply by 2^112; inf/nan get their exponent forced to all ones.
inline float half_to_float_fast(uint16_t h) {
  const uint32_t em = uint32_t(h & 0x7fff) << 13;
  const float f = bits_to_float(em) * 0x1p112f;
  const uint32_t inf_nan = (h & 0x7c00) == 0x7c00 ? 0x7f800000u : 0u;
  return bits_to_float(float_to_bits(f) | inf_nan | (uint32_t(h & 0x8000) << 16));
}

// Blocks are read with memcpy-free casts only through these structs, whose alignment is 1 or 2; rows in
// a GGUF mapping are 32-byte aligned and every block size is even, so the casts are aligned.
template <typename B>
const B* blocks(const void* p) {
  return static_cast<const B*>(p);
}

void dequant_f16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = half_to_float_fast(x[i]);
}

void dequant_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bits_to_float(uint32_t(x[i]) << 16);
}

void dequant_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = half_to_float(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(int(b[i].qs[j] & 0xf) - 8) * d;
      y[j + 16] = float(int(b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = half_to_float(b[i].d), m = half_to_float(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(b[i].qs[j] & 0xf) * d + m;
      y[j + 16] = float(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequant_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = half_to_float(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = float(b[i].qs[j]) * d;
  }
}

// Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes: sub-blocks 0-3 in the low 6 bits of
// bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 as nibbles in bytes 8-11 plus the top 2 bits of
// bytes 0-7.
inline void q4k_scale_min(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequant_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d), dmin = half_to_float(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 4; ++j, q += 32, y += 64) {
      int sc1, m1, sc2, m2;
      q4k_scale_min(2 * j, b[i].scales, sc1, m1);
      q4k_scale_min(2 * j + 1, b[i].scales, sc2, m2);
      const float d1 = d * float(sc1), o1 = dmin * float(m1);
      const float d2 = d * float(sc2), o2 = dmin * float(m2);
      for (int l = 0; l < 32; ++l) {
        y[l] = d1 * float(q[l] & 0xf) - o1;
        y[l + 32] = d2 * float(q[l] >> 4) - o2;
      }
    }
  }
}

void dequant_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, y += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

// ---- encoders ----

void quant_q4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0, max = 0;  // max keeps its sign: the largest magnitude maps to -8
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = float_to_half(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, int(x[j] * id + 8.5f));
      const int q1 = std::min(15, int(x[j + 16] * id + 8.5f));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quant_q4_1(const float* x, BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
    }
    const float d = (hi - lo) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = float_to_half(d);
    b[i].m = float_to_half(lo);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, int((x[j] - lo) * id + 0.5f));
      const int q1 = std::min(15, int((x[j + 16] - lo) * id + 0.5f));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quant_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = float_to_half(d);
    for (int j = 0; j < 32; ++j) b[i].qs[j] = int8_t(std::lround(x[j] * id));
  }
}

inline int clamp_round(float v, int lo, int hi) {
  return std::clamp(int(std::lround(v)), lo, hi);
}

// Q4_K: each 32-value sub-block gets value = d*sc*q - dmin*m with q in 0..15 and 6-bit sc, m. The min is
// clamped to <= 0 (as ggml does) so m stays non-negative; sc and m are then quantized against the block's
// largest scale and min, and the quants are rounded against the quantized scale so errors do not compound.
void quant_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    float scales[8], mins[8];
    float max_scale = 0, max_min = 0;
    for (int s = 0; s < 8; ++s) {
      const float* xs = x + 32 * s;
      float lo = xs[0], hi = xs[0];
      for (int l = 1; l < 32; ++l) {
        lo = std::min(lo, xs[l]);
        hi = std::max(hi, xs[l]);
      }
      lo = std::min(lo, 0.0f);
      scales[s] = (hi - lo) / 15;
      mins[s] = -lo;
      max_scale = std::max(max_scale, scales[s]);
      max_min = std::max(max_min, mins[s]);
    }
    const float d = max_scale / 63, dmin = max_min / 63;
    b[i].d = float_to_half(d);
    b[i].dmin = float_to_half(dmin);
    // Use the f16-rounded values so quants are chosen for the scales the decoder will actually see.
    const float dq = half_to_float(b[i].d), dminq = half_to_float(b[i].dmin);
    uint8_t ls[8], lm[8];
    for (int s = 0; s < 8; ++s) {
      // Round the scale up when rounding down would leave the top of the range unreachable.
      ls[s] = uint8_t(dq > 0 ? std::clamp(int(std::ceil(scales[s] / dq - 1e-4f)), 0, 63) : 0);
      lm[s] = uint8_t(dminq > 0 ? clamp_round(mins[s] / dminq, 0, 63) : 0);
    }
    std::memset(b[i].scales, 0, 12);
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        b[i].scales[s] = ls[s];
        b[i].scales[s + 4] = lm[s];
      } else {
        b[i].scales[s + 4] = uint8_t((ls[s] & 0xf) | ((lm[s] & 0xf) << 4));
        b[i].scales[s - 4] |= uint8_t((ls[s] >> 4) << 6);
        b[i].scales[s] |= uint8_t((lm[s] >> 4) << 6);
      }
    }
    uint8_t L[256];
    for (int s = 0; s < 8; ++s) {
      const float step = dq * ls[s], off = dminq * lm[s];
      const float inv = step > 0 ? 1.0f / step : 0.0f;
      for (int l = 0; l < 32; ++l) L[32 * s + l] = uint8_t(clamp_round((x[32 * s + l] + off) * inv, 0, 15));
    }
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) b[i].qs[32 * j + l] = uint8_t(L[64 * j + l] | (L[64 * j + l + 32] << 4));
  }
}

// Q6_K: each 16-value sub-block gets value = d*sc*(q-32), q in 0..63, sc an int8. The sub-block scale maps
// its largest magnitude to 31 so no clamping at -32/31 is needed; sc is quantized against the largest one.
void quant_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    float scales[16], max_scale = 0;
    for (int s = 0; s < 16; ++s) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * s + l]));
      scales[s] = amax / 31;
      max_scale = std::max(max_scale, scales[s]);
    }
    const float d = max_scale / 127;
    b[i].d = float_to_half(d);
    const float dq = half_to_float(b[i].d);
    uint8_t L[256];
    for (int s = 0; s < 16; ++s) {
      const int sc = dq > 0 ? std::clamp(int(std::ceil(scales[s] / dq - 1e-4f)), 0, 127) : 0;
      b[i].scales[s] = int8_t(sc);
      const float step = dq * float(sc);
      const float inv = step > 0 ? 1.0f / step : 0.0f;
      for (int l = 0; l < 16; ++l) L[16 * s + l] = uint8_t(clamp_round(x[16 * s + l] * inv, -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = b[i].ql + 64 * h;
      uint8_t* qh = b[i].qh + 32 * h;
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
        ql[l] = uint8_t((q1 & 0xf) | ((q3 & 0xf) << 4));
        ql[l + 32] = uint8_t((q2 & 0xf) | ((q4 & 0xf) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

uint16_t float_to_bf16(float f) {
  const uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // keep nan a (quiet) nan
  return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16);                  // round to nearest even
}

int64_t checked_blocks(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  require(n >= 0 && n % t.block_elems == 0, ErrorCode::kInvalidArgument,
          std::to_string(n) + " values is not a multiple of the " + t.name + " block size");
  return n / t.block_elems;
}

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const int64_t nb = checked_blocks(type, n);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::F16:
      dequant_f16(blocks<uint16_t>(src), dst, n);
      return;
    case GgmlType::BF16:
      dequant_bf16(blocks<uint16_t>(src), dst, n);
      return;
    case GgmlType::Q4_0:
      dequant_q4_0(blocks<BlockQ4_0>(src), dst, nb);
      return;
    case GgmlType::Q4_1:
      dequant_q4_1(blocks<BlockQ4_1>(src), dst, nb);
      return;
    case GgmlType::Q8_0:
      dequant_q8_0(blocks<BlockQ8_0>(src), dst, nb);
      return;
    case GgmlType::Q4_K:
      dequant_q4_k(blocks<BlockQ4_K>(src), dst, nb);
      return;
    case GgmlType::Q6_K:
      dequant_q6_k(blocks<BlockQ6_K>(src), dst, nb);
      return;
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const int64_t nb = checked_blocks(type, n);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::F16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = float_to_half(src[i]);
      return;
    }
    case GgmlType::BF16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = float_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q4_0:
      quant_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
      return;
    case GgmlType::Q4_1:
      quant_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
      return;
    case GgmlType::Q8_0:
      quant_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
      return;
    case GgmlType::Q4_K:
      quant_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
      return;
    case GgmlType::Q6_K:
      quant_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
      return;
  }
}

namespace {

// 8 independent partial sums let the compiler vectorize the reduction without -ffast-math.
inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

float dot_row(GgmlType type, const void* row, const float* x, int64_t n) {
  if (type == GgmlType::F32) {
    checked_blocks(type, n);
    return dot_f32(static_cast<const float*>(row), x, n);
  }
  // Dequantize a chunk into an L1-resident buffer, then dot it: the two simple loops vectorize well.
  constexpr int64_t kChunk = 512;  // a multiple of every block size
  const TypeTraits& t = type_traits(type);
  checked_blocks(type, n);
  const auto* p = static_cast<const uint8_t*>(row);
  alignas(64) float buf[kChunk];
  float sum = 0;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    dequantize_row(type, p + size_t(i / t.block_elems) * t.block_bytes, buf, m);
    sum += dot_f32(buf, x + i, m);
  }
  return sum;
}

bool q4_0x8_applies(GgmlType type, int64_t cols) {
  return type == GgmlType::Q4_0 && cols > 0 && cols % kQ4_0x8RunValues == 0;
}

void repack_q4_0x8(const void* src, int64_t rows, int64_t cols, void* dst) {
  require(q4_0x8_applies(GgmlType::Q4_0, cols), ErrorCode::kInvalidArgument,
          "repack_q4_0x8: rows of " + std::to_string(cols) + " values are not whole runs of 256");
  const auto* in = static_cast<const uint8_t*>(src);
  auto* out = static_cast<uint8_t*>(dst);
  const int64_t runs = rows * (cols / kQ4_0x8RunValues);
  for (int64_t r = 0; r < runs; ++r, in += kQ4_0x8RunBytes, out += kQ4_0x8RunBytes) {
    for (int b = 0; b < 8; ++b) {
      std::memcpy(out + 2 * b, in + sizeof(BlockQ4_0) * b, 2);
      std::memcpy(out + 16 + 16 * b, in + sizeof(BlockQ4_0) * b + 2, 16);
    }
  }
}

}  // namespace fkv
