// Device-side decoding of GGUF weight blocks, in units of 32 consecutive values of a row.
//
// Every quantized format reads as 32-value units whose values are affine in small integers:
//   value[j] = a0 * q[j] + b0 for j < 16, a1 * q[j] + b1 for j >= 16,
// so that a dot product needs sum(q * x) per half (fp32 FMAs) and, only for formats with an offset,
// sum(x). The byte layouts follow ggml's block structs (model/quant.h is the host reference).
// Loads use the widest width the block's alignment allows (ggml blocks are only 2-byte aligned).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

// Host and device: the decoders also compile for the host, where tests/cuda/quant_decode_test.cpp checks them
// against model/quant.h's dequantize_row on every machine, GPU or not.
#define FKV_HD __host__ __device__
#ifdef __CUDA_ARCH__  // the device pass; host compilers warn about the pragma
#define FKV_UNROLL _Pragma("unroll")
#else
#define FKV_UNROLL
#endif

namespace fkv::cuda {

struct Unit {
  float q[32];
  float a0, b0, a1, b1;
};

// Four consecutive values 4p .. 4p+3 of a unit (p < 8): value = a * q + b. The matvec gives each unit to 8
// adjacent lanes, so that a warp's loads of weights and of x are contiguous (coalesced) rather than
// strided by a unit's size.
struct Quad {
  float q[4];
  float a, b;
};

FKV_HD inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

FKV_HD inline float half_at(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(p)));
}
FKV_HD inline uint32_t u16_at(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
FKV_HD inline uint32_t u32_at(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Exact small-integer to float without the slow I2F: 2^23 + n has n in its low mantissa bits.
FKV_HD inline float small_uint_to_float(uint32_t n, float minus) {
  return bits_float(0x4B000000u | n) - (8388608.0f + minus);
}

// Q4_0: 18 bytes per 32 values: f16 d, 16 bytes of nibbles (value j low nibble of byte j, j+16 high).
struct Q4_0 {
  static constexpr int kBlockBytes = 18;
  static constexpr int kUnitsPerBlock = 1;
  static constexpr bool kOffset = false;
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;
    r.a0 = r.a1 = half_at(b);
    r.b0 = r.b1 = 0.0f;
FKV_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t w = u16_at(b + 2 + 2 * i);
      r.q[2 * i] = small_uint_to_float(w & 15, 8.0f);
      r.q[2 * i + 1] = small_uint_to_float((w >> 8) & 15, 8.0f);
      r.q[2 * i + 16] = small_uint_to_float((w >> 4) & 15, 8.0f);
      r.q[2 * i + 17] = small_uint_to_float((w >> 12) & 15, 8.0f);
    }
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;
    r.a = half_at(b);
    r.b = 0.0f;
    const uint32_t w0 = u16_at(b + 2 + 4 * (p & 3)), w1 = u16_at(b + 4 + 4 * (p & 3));
    const int shift = (p >> 2) * 4;  // values 16.. are the high nibbles
    r.q[0] = small_uint_to_float((w0 >> shift) & 15, 8.0f);
    r.q[1] = small_uint_to_float((w0 >> (8 + shift)) & 15, 8.0f);
    r.q[2] = small_uint_to_float((w1 >> shift) & 15, 8.0f);
    r.q[3] = small_uint_to_float((w1 >> (8 + shift)) & 15, 8.0f);
  }
};

// Q4_0 as the CUDA backend stores it (cuda_backend.cpp upload_weight; repack_q4_0x8 in src/model/quant.h,
// shared with the Vulkan backend) when a row is a multiple of 256 values: each run of 8 blocks (144 bytes,
// 16-byte aligned) holds the 8 scales, then the 8 blocks' 16 nibble bytes. A warp then reads a run's
// nibbles as 32 aligned words, where ggml's 18-byte blocks (2-byte aligned) allow only 2-byte loads; the
// bytes per row do not change.
struct Q4_0x8 {
  static constexpr int kBlockBytes = 18;
  static constexpr int kUnitsPerBlock = 1;
  static constexpr bool kOffset = false;
  static constexpr int kRunBlocks = 8;
  static constexpr int kRunBytes = 144;  // kQ4_0x8RunBytes of model/quant.h
  FKV_HD static const uint8_t* scale_at(const uint8_t* row, int u) {
    return row + size_t(u >> 3) * kRunBytes + 2 * (u & 7);
  }
  FKV_HD static const uint8_t* nibbles_at(const uint8_t* row, int u) {
    return row + size_t(u >> 3) * kRunBytes + 16 + 16 * (u & 7);
  }
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    r.a0 = r.a1 = half_at(scale_at(row, u));
    r.b0 = r.b1 = 0.0f;
    const uint8_t* q = nibbles_at(row, u);
FKV_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = u32_at(q + 4 * i);
FKV_UNROLL
      for (int k = 0; k < 4; ++k) {
        r.q[4 * i + k] = small_uint_to_float((w >> (8 * k)) & 15, 8.0f);
        r.q[4 * i + k + 16] = small_uint_to_float((w >> (8 * k + 4)) & 15, 8.0f);
      }
    }
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    r.a = half_at(scale_at(row, u));
    r.b = 0.0f;
    const uint32_t w = u32_at(nibbles_at(row, u) + 4 * (p & 3));
    const int shift = (p >> 2) * 4;
FKV_UNROLL
    for (int k = 0; k < 4; ++k) r.q[k] = small_uint_to_float((w >> (8 * k + shift)) & 15, 8.0f);
  }
};

// Q4_1: 20 bytes: f16 d, f16 m, 16 bytes of nibbles; value = d * q + m.
struct Q4_1 {
  static constexpr int kBlockBytes = 20;
  static constexpr int kUnitsPerBlock = 1;
  static constexpr bool kOffset = true;
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;  // 4-byte aligned: 20 * u
    const uint32_t dm = u32_at(b);
    r.a0 = r.a1 = __half2float(__ushort_as_half(uint16_t(dm & 0xffff)));
    r.b0 = r.b1 = __half2float(__ushort_as_half(uint16_t(dm >> 16)));
FKV_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t w = u32_at(b + 4 + 4 * i);
FKV_UNROLL
      for (int k = 0; k < 4; ++k) {
        r.q[4 * i + k] = small_uint_to_float((w >> (8 * k)) & 15, 0.0f);
        r.q[4 * i + k + 16] = small_uint_to_float((w >> (8 * k + 4)) & 15, 0.0f);
      }
    }
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;
    const uint32_t dm = u32_at(b);
    r.a = __half2float(__ushort_as_half(uint16_t(dm & 0xffff)));
    r.b = __half2float(__ushort_as_half(uint16_t(dm >> 16)));
    const uint32_t w = u32_at(b + 4 + 4 * (p & 3));
    const int shift = (p >> 2) * 4;
FKV_UNROLL
    for (int k = 0; k < 4; ++k) r.q[k] = small_uint_to_float((w >> (8 * k + shift)) & 15, 0.0f);
  }
};

// Q8_0: 34 bytes: f16 d, 32 int8.
struct Q8_0 {
  static constexpr int kBlockBytes = 34;
  static constexpr int kUnitsPerBlock = 1;
  static constexpr bool kOffset = false;
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;
    r.a0 = r.a1 = half_at(b);
    r.b0 = r.b1 = 0.0f;
FKV_UNROLL
    for (int i = 0; i < 16; ++i) {
      const uint32_t w = u16_at(b + 2 + 2 * i);
      // int8 -> float: flip the sign bit to get an offset-128 unsigned byte.
      r.q[2 * i] = small_uint_to_float((w & 0xff) ^ 0x80, 128.0f);
      r.q[2 * i + 1] = small_uint_to_float(((w >> 8) & 0xff) ^ 0x80, 128.0f);
    }
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    const uint8_t* b = row + size_t(u) * kBlockBytes;
    r.a = half_at(b);
    r.b = 0.0f;
    const uint32_t w = u16_at(b + 2 + 4 * p) | (u16_at(b + 4 + 4 * p) << 16);
FKV_UNROLL
    for (int k = 0; k < 4; ++k) r.q[k] = small_uint_to_float(((w >> (8 * k)) & 0xff) ^ 0x80, 128.0f);
  }
};

// Q4_K: 144 bytes per 256 values: f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of
// nibbles. Sub-block j (32 values) has scale d*sc_j and offset -dmin*m_j; its nibbles are the low (j even)
// or high (j odd) halves of bytes 32*(j/2) .. +32.
struct Q4_K {
  static constexpr int kBlockBytes = 144;
  static constexpr int kUnitsPerBlock = 8;
  static constexpr bool kOffset = true;
  // Sub-block j's scale d*sc_j and offset -dmin*m_j (6-bit sc/m packed in the 12 scale bytes).
  FKV_HD static void scale_offset(const uint8_t* b, int j, float& scale, float& offset) {
    const uint32_t dm = u32_at(b);
    const float d = __half2float(__ushort_as_half(uint16_t(dm & 0xffff)));
    const float dmin = __half2float(__ushort_as_half(uint16_t(dm >> 16)));
    const uint8_t* s = b + 4;
    uint32_t sc, m;
    if (j < 4) {
      sc = s[j] & 63;
      m = s[j + 4] & 63;
    } else {
      sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
      m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
    scale = d * float(sc);
    offset = -dmin * float(m);
  }
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    const uint8_t* b = row + size_t(u >> 3) * kBlockBytes;  // 16-byte aligned
    const int j = u & 7;
    float scale, offset;
    scale_offset(b, j, scale, offset);
    r.a0 = r.a1 = scale;
    r.b0 = r.b1 = offset;
    const uint4* qs = reinterpret_cast<const uint4*>(b + 16 + 32 * (j >> 1));
    const int shift = (j & 1) * 4;
    const uint4 lo = qs[0], hi = qs[1];
    const uint32_t words[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
FKV_UNROLL
    for (int i = 0; i < 8; ++i)
FKV_UNROLL
      for (int k = 0; k < 4; ++k) r.q[4 * i + k] = small_uint_to_float((words[i] >> (8 * k + shift)) & 15, 0.0f);
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    const uint8_t* b = row + size_t(u >> 3) * kBlockBytes;
    const int j = u & 7;
    scale_offset(b, j, r.a, r.b);
    const uint32_t w = u32_at(b + 16 + 32 * (j >> 1) + 4 * p);
    const int shift = (j & 1) * 4;
FKV_UNROLL
    for (int k = 0; k < 4; ++k) r.q[k] = small_uint_to_float((w >> (8 * k + shift)) & 15, 0.0f);
  }
};

// Q6_K: 210 bytes per 256 values: ql[128] low nibbles, qh[64] high 2-bit pairs, int8 scales[16], f16 d.
// Value 128h + 32c + l (h < 2, c < 4, l < 32): low nibble of ql[64h + l + 32(c&1)] shifted by 4(c>>1),
// high bits (qh[32h + l] >> 2c) & 3, minus 32, times d * scales[8h + 2c + l/16].
struct Q6_K {
  static constexpr int kBlockBytes = 210;
  static constexpr int kUnitsPerBlock = 8;
  static constexpr bool kOffset = false;
  FKV_HD static void load(const uint8_t* row, int u, Unit& r) {
    const uint8_t* b = row + size_t(u >> 3) * kBlockBytes;  // 2-byte aligned
    const int h = (u & 7) >> 2, c = u & 3;
    const float d = half_at(b + 208);
    const uint32_t sc = u16_at(b + 192 + 8 * h + 2 * c);
    r.a0 = d * float(int8_t(sc & 0xff));
    r.a1 = d * float(int8_t(sc >> 8));
    r.b0 = r.b1 = 0.0f;
    const uint8_t* ql = b + 64 * h + 32 * (c & 1);
    const uint8_t* qh = b + 128 + 32 * h;
    const int lshift = 4 * (c >> 1), hshift = 2 * c;
FKV_UNROLL
    for (int i = 0; i < 16; ++i) {
      const uint32_t lw = u16_at(ql + 2 * i), hw = u16_at(qh + 2 * i);
FKV_UNROLL
      for (int k = 0; k < 2; ++k) {
        const uint32_t lo = (lw >> (8 * k + lshift)) & 15, hi = (hw >> (8 * k + hshift)) & 3;
        r.q[2 * i + k] = small_uint_to_float(lo | (hi << 4), 32.0f);
      }
    }
  }
  FKV_HD static void load4(const uint8_t* row, int u, int p, Quad& r) {
    const uint8_t* b = row + size_t(u >> 3) * kBlockBytes;
    const int h = (u & 7) >> 2, c = u & 3, l0 = 4 * p;
    r.a = half_at(b + 208) * float(int8_t(b[192 + 8 * h + 2 * c + (p >> 2)]));
    r.b = 0.0f;
    const uint8_t* ql = b + 64 * h + 32 * (c & 1) + l0;
    const uint8_t* qh = b + 128 + 32 * h + l0;
    const uint32_t lw = u16_at(ql) | (u16_at(ql + 2) << 16), hw = u16_at(qh) | (u16_at(qh + 2) << 16);
    const int lshift = 4 * (c >> 1), hshift = 2 * c;
FKV_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint32_t lo = (lw >> (8 * k + lshift)) & 15, hi = (hw >> (8 * k + hshift)) & 3;
      r.q[k] = small_uint_to_float(lo | (hi << 4), 32.0f);
    }
  }
};

// sum_j value[j] * x[j] for one unit; x points at the unit's 32 activations (16-byte aligned).
template <class F>
__device__ __forceinline__ float unit_dot(const Unit& r, const float* x) {
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float s[2] = {0.0f, 0.0f}, sx[2] = {0.0f, 0.0f};
FKV_UNROLL
  for (int i = 0; i < 8; ++i) {
    const float4 v = x4[i];
    const int h = i >> 2;
    s[h] = fmaf(r.q[4 * i], v.x, s[h]);
    s[h] = fmaf(r.q[4 * i + 1], v.y, s[h]);
    s[h] = fmaf(r.q[4 * i + 2], v.z, s[h]);
    s[h] = fmaf(r.q[4 * i + 3], v.w, s[h]);
    if constexpr (F::kOffset) sx[h] += (v.x + v.y) + (v.z + v.w);
  }
  float out = r.a0 * s[0] + r.a1 * s[1];
  if constexpr (F::kOffset) out += r.b0 * sx[0] + r.b1 * sx[1];
  return out;
}

// sum_k value[k] * x[k] for one quad; x points at its 4 activations (16-byte aligned).
template <class F>
__device__ __forceinline__ float quad_dot(const Quad& r, const float* x) {
  const float4 v = *reinterpret_cast<const float4*>(x);
  const float s = fmaf(r.q[0], v.x, fmaf(r.q[1], v.y, fmaf(r.q[2], v.z, r.q[3] * v.w)));
  if constexpr (F::kOffset) return fmaf(r.a, s, r.b * ((v.x + v.y) + (v.z + v.w)));
  return r.a * s;
}

FKV_HD inline float unit_value(const Unit& r, int j) {
  return j < 16 ? fmaf(r.a0, r.q[j], r.b0) : fmaf(r.a1, r.q[j], r.b1);
}

}  // namespace fkv::cuda
