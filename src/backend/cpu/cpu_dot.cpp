#include "backend/cpu/cpu_dot.h"

#include <cstring>

#include "model/quant.h"
#include "util/half.h"

// Lane-wise accumulators (one per value of a half block) let the compiler vectorise without reassociating
// a single sum, which it may not do under strict IEEE rules.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define FKV_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FKV_MULTIVERSION
#endif

namespace fkv::cpu {
namespace {

inline float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

inline float reduce16(const float* acc) {
  float s = 0;
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

FKV_MULTIVERSION float dot_q4_0(const uint8_t* row, const float* x, int64_t n) {
  float acc[16] = {};
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 18;
    const float d = load_half(blk);
    const uint8_t* qs = blk + 2;
    const float* xb = x + b * 32;
    for (int j = 0; j < 16; ++j)
      acc[j] += d * (float(int(qs[j] & 15) - 8) * xb[j] + float(int(qs[j] >> 4) - 8) * xb[j + 16]);
  }
  return reduce16(acc);
}

FKV_MULTIVERSION float dot_q4_1(const uint8_t* row, const float* x, int64_t n) {
  float acc[16] = {};
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 20;
    const float d = load_half(blk), m = load_half(blk + 2);
    const uint8_t* qs = blk + 4;
    const float* xb = x + b * 32;
    for (int j = 0; j < 16; ++j)
      acc[j] += (d * float(qs[j] & 15) + m) * xb[j] + (d * float(qs[j] >> 4) + m) * xb[j + 16];
  }
  return reduce16(acc);
}

FKV_MULTIVERSION float dot_q8_0(const uint8_t* row, const float* x, int64_t n) {
  float acc[16] = {};
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 34;
    const float d = load_half(blk);
    const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
    const float* xb = x + b * 32;
    for (int j = 0; j < 16; ++j) acc[j] += d * (float(qs[j]) * xb[j] + float(qs[j + 16]) * xb[j + 16]);
  }
  return reduce16(acc);
}

}  // namespace

float dot_quantized(GgmlType type, const uint8_t* row, const float* x, int64_t n) {
  switch (type) {
    case GgmlType::Q4_0: return dot_q4_0(row, x, n);
    case GgmlType::Q4_1: return dot_q4_1(row, x, n);
    case GgmlType::Q8_0: return dot_q8_0(row, x, n);
    default: return dot_row(type, row, x, n);
  }
}

}  // namespace fkv::cpu
