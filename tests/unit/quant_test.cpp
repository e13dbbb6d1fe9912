// Quant formats: hand-built blocks decode to hand-computed values (the layout as ggml defines it), and
// quantize -> dequantize round trips stay within each format's error bound.
#include "model/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "util/error.h"
#include "util/half.h"

namespace fkv {
namespace {

void put_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

std::vector<float> dequant(GgmlType t, const std::vector<uint8_t>& block, int64_t n) {
  std::vector<float> y(n);
  dequantize_row(t, block.data(), y.data(), n);
  return y;
}

TEST(Quant, TypeTraits) {
  EXPECT_EQ(row_bytes(GgmlType::F32, 10), 40u);
  EXPECT_EQ(row_bytes(GgmlType::F16, 10), 20u);
  EXPECT_EQ(row_bytes(GgmlType::BF16, 10), 20u);
  EXPECT_EQ(row_bytes(GgmlType::Q4_0, 64), 36u);
  EXPECT_EQ(row_bytes(GgmlType::Q4_1, 64), 40u);
  EXPECT_EQ(row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(GgmlType::Q6_K, 512), 420u);
  EXPECT_THROW(row_bytes(GgmlType::Q4_K, 128), Error);
  EXPECT_FALSE(is_supported_type(77));
  EXPECT_TRUE(is_supported_type(30));
  EXPECT_EQ(type_name(3), "q4_1");
  EXPECT_EQ(type_name(77), "unknown(77)");
  try {
    type_traits(static_cast<GgmlType>(77));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

TEST(Quant, F16EveryBitPattern) {
  std::vector<uint16_t> h(65536);
  for (uint32_t i = 0; i < 65536; ++i) h[i] = uint16_t(i);
  std::vector<float> y(65536);
  dequantize_row(GgmlType::F16, h.data(), y.data(), 65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = half_to_float(uint16_t(i));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(y[i])) << i;
    } else {
      ASSERT_EQ(float_to_bits(y[i]), float_to_bits(want)) << "half 0x" << std::hex << i;
    }
  }
}

TEST(Quant, Bf16HandValues) {
  const uint16_t b[4] = {0x3f80, 0xc040, 0x0000, 0x7f80};
  float y[4];
  dequantize_row(GgmlType::BF16, b, y, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -3.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_TRUE(std::isinf(y[3]));
  uint16_t out[4];
  const float x[4] = {1.0f, -3.0f, 1.00390625f /* halfway: ties to even */, 1.01171875f /* rounds up */};
  quantize_row(GgmlType::BF16, x, out, 4);
  EXPECT_EQ(out[0], 0x3f80);
  EXPECT_EQ(out[1], 0xc040);
  EXPECT_EQ(out[2], 0x3f80);
  EXPECT_EQ(out[3], 0x3f82);
}

TEST(Quant, Q4_0HandBlock) {
  std::vector<uint8_t> b(18);
  put_u16(&b[0], 0x3800);  // d = 0.5
  for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(GgmlType::Q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;       // low nibbles: the first 16 values
    EXPECT_EQ(y[j + 16], (7 - j) * 0.5f) << j;  // high nibbles: the last 16
  }
}

TEST(Quant, Q4_1HandBlock) {
  std::vector<uint8_t> b(20);
  put_u16(&b[0], 0x3400);  // d = 0.25
  put_u16(&b[2], 0xbc00);  // m = -1
  for (int j = 0; j < 16; ++j) b[4 + j] = uint8_t(j | ((15 - j) << 4));
  const auto y = dequant(GgmlType::Q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.25f - 1) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.25f - 1) << j;
  }
}

TEST(Quant, Q8_0HandBlock) {
  std::vector<uint8_t> b(34);
  put_u16(&b[0], 0x3000);  // d = 0.125
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(j * 8 - 128));
  const auto y = dequant(GgmlType::Q8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.125f) << j;
}

TEST(Quant, Q4_KHandBlock) {
  // Scales and mins past 15 exercise the high 2 bits stored in bytes 0-7.
  const int ls[8] = {1, 2, 3, 4, 17, 33, 50, 63};
  const int lm[8] = {0, 5, 10, 63, 16, 32, 48, 7};
  std::vector<uint8_t> b(144);
  put_u16(&b[0], 0x3800);  // d = 0.5
  put_u16(&b[2], 0x3400);  // dmin = 0.25
  uint8_t* sc = &b[4];
  for (int j = 0; j < 4; ++j) {
    sc[j] = uint8_t(ls[j] | ((ls[j + 4] >> 4) << 6));
    sc[j + 4] = uint8_t(lm[j] | ((lm[j + 4] >> 4) << 6));
    sc[j + 8] = uint8_t((ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4));
  }
  uint8_t* qs = &b[16];
  for (int i = 0; i < 128; ++i) qs[i] = uint8_t((i % 16) | ((15 - i % 16) << 4));
  const auto y = dequant(GgmlType::Q4_K, b, 256);
  // Values 64c..64c+31 are the low nibbles of qs[32c..32c+31] (sub-block 2c); the next 32 the high ones.
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int q_lo = l % 16, q_hi = 15 - l % 16;
      EXPECT_FLOAT_EQ(y[64 * c + l], 0.5f * ls[2 * c] * q_lo - 0.25f * lm[2 * c]) << c << " " << l;
      EXPECT_FLOAT_EQ(y[64 * c + 32 + l], 0.5f * ls[2 * c + 1] * q_hi - 0.25f * lm[2 * c + 1])
          << c << " " << l;
    }
  }
}

TEST(Quant, Q6_KHandBlock) {
  auto q = [](int v) { return (v * 7) % 64; };  // every 6-bit value, scattered
  std::vector<uint8_t> b(210);
  uint8_t* ql = &b[0];
  uint8_t* qh = &b[128];
  auto* scales = reinterpret_cast<int8_t*>(&b[192]);
  put_u16(&b[208], 0x3800);  // d = 0.5
  for (int s = 0; s < 16; ++s) scales[s] = int8_t(s * 9 - 70);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = q(128 * h + l), q2 = q(128 * h + l + 32), q3 = q(128 * h + l + 64),
                q4 = q(128 * h + l + 96);
      ql[64 * h + l] = uint8_t((q1 & 0xf) | ((q3 & 0xf) << 4));
      ql[64 * h + l + 32] = uint8_t((q2 & 0xf) | ((q4 & 0xf) << 4));
      qh[32 * h + l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
  const auto y = dequant(GgmlType::Q6_K, b, 256);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(y[v], 0.5f * scales[v / 16] * (q(v) - 32)) << v;
}

std::vector<float> gaussian(int64_t n, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

struct RoundTrip {
  GgmlType type;
  int64_t group;   // values that share the bound (a block or a super-block)
  double max_rel;  // max |error| / (max - min of the group)
  double rms_rel;  // rms error / rms of the data, over the whole row
};

class QuantRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(QuantRoundTrip, WithinBound) {
  const RoundTrip p = GetParam();
  const int64_t n = 256 * 64;
  for (float stddev : {1.0f, 0.02f}) {
    const auto x = gaussian(n, stddev, 1234);
    std::vector<uint8_t> q(row_bytes(p.type, n));
    quantize_row(p.type, x.data(), q.data(), n);
    std::vector<float> y(n);
    dequantize_row(p.type, q.data(), y.data(), n);
    double err2 = 0, sig2 = 0;
    for (int64_t g = 0; g < n; g += p.group) {
      float lo = x[g], hi = x[g];
      for (int64_t i = g; i < g + p.group; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      for (int64_t i = g; i < g + p.group; ++i) {
        const double e = double(y[i]) - x[i];
        ASSERT_LE(std::fabs(e), p.max_rel * (hi - lo)) << type_name(uint32_t(p.type)) << " value " << i;
        err2 += e * e;
        sig2 += double(x[i]) * x[i];
      }
    }
    EXPECT_LE(std::sqrt(err2 / sig2), p.rms_rel) << type_name(uint32_t(p.type)) << " stddev " << stddev;
  }
}

// Bounds: a value is off by at most half a quantization step, a step being the group's range over the
// number of levels (plus f16 rounding of the scales and, for the k-quants, 6- or 8-bit scale rounding).
INSTANTIATE_TEST_SUITE_P(AllFormats, QuantRoundTrip,
                         ::testing::Values(RoundTrip{GgmlType::F32, 32, 0.0, 0.0},
                                           RoundTrip{GgmlType::F16, 32, 1.0 / 2048, 5e-4},
                                           RoundTrip{GgmlType::BF16, 32, 1.0 / 256, 4e-3},
                                           RoundTrip{GgmlType::Q8_0, 32, 0.5 / 127 * 1.01, 0.01},
                                           RoundTrip{GgmlType::Q4_0, 32, 1.0 / 16 * 1.01 * 2, 0.12},
                                           RoundTrip{GgmlType::Q4_1, 32, 0.5 / 15 * 1.05, 0.1},
                                           RoundTrip{GgmlType::Q4_K, 256, 0.5 / 15 * 1.3, 0.12},
                                           RoundTrip{GgmlType::Q6_K, 256, 0.5 / 31 * 1.2, 0.03}),
                         [](const auto& info) { return type_name(uint32_t(info.param.type)); });

TEST(Quant, ZeroAndConstantRows) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    for (float c : {0.0f, 0.75f, -2.0f}) {
      std::vector<float> x(256, c), y(256);
      std::vector<uint8_t> q(row_bytes(t, 256));
      quantize_row(t, x.data(), q.data(), 256);
      dequantize_row(t, q.data(), y.data(), 256);
      for (int i = 0; i < 256; ++i)
        ASSERT_NEAR(y[i], c, std::fabs(c) * 0.01 + 1e-6) << type_name(uint32_t(t));
    }
  }
}

TEST(Quant, DotRowMatchesDequantDot) {
  const int64_t n = 256 * 11;  // not a multiple of the internal chunk
  const auto w = gaussian(n, 0.05f, 7);
  const auto x = gaussian(n, 1.0f, 8);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row(t, w.data(), q.data(), n);
    std::vector<float> y(n);
    dequantize_row(t, q.data(), y.data(), n);
    double want = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      want += double(y[i]) * x[i];
      mag += std::fabs(double(y[i]) * x[i]);
    }
    EXPECT_NEAR(dot_row(t, q.data(), x.data(), n), want, 1e-5 * mag) << type_name(uint32_t(t));
  }
}

TEST(Quant, RejectsPartialBlocks) {
  float x[16] = {};
  uint8_t q[64];
  EXPECT_THROW(quantize_row(GgmlType::Q4_0, x, q, 16), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q6_K, q, x, 16), Error);
  EXPECT_THROW(dot_row(GgmlType::Q8_0, q, x, 16), Error);
}

// Q4_0x8 (the GPU backends' upload layout): every value read back from the repacked bytes at the layout's
// documented places (scale of block k of a run at byte 2k, its nibble bytes at 16 + 16k) equals the
// reference decode of the ggml bytes, and the size is unchanged.
TEST(Quant, Q4_0x8RepackKeepsEveryValue) {
  for (int64_t cols : {int64_t(256), int64_t(768), int64_t(4096)}) {
    const int64_t rows = 3;
    const auto v = gaussian(rows * cols, 1.0f, uint32_t(cols));
    const size_t rb = row_bytes(GgmlType::Q4_0, cols);
    std::vector<uint8_t> q(rb * rows), packed(q.size(), 0xAB);
    quantize_row(GgmlType::Q4_0, v.data(), q.data(), rows * cols);
    repack_q4_0x8(q.data(), rows, cols, packed.data());
    EXPECT_EQ(rb % kQ4_0x8RunBytes, 0u);
    std::vector<float> want(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(GgmlType::Q4_0, q.data() + rb * r, want.data(), cols);
      const uint8_t* row = packed.data() + rb * r;
      for (int64_t u = 0; u < cols / 32; ++u) {
        const uint8_t* run = row + size_t(u / 8) * kQ4_0x8RunBytes;
        const int k = int(u % 8);
        uint16_t h;
        std::memcpy(&h, run + 2 * k, 2);
        const float d = half_to_float(h);
        for (int j = 0; j < 16; ++j) {
          const uint8_t b = run[16 + 16 * k + j];
          ASSERT_EQ(float((b & 15) - 8) * d, want[size_t(32 * u + j)]) << "cols " << cols << " row " << r;
          ASSERT_EQ(float((b >> 4) - 8) * d, want[size_t(32 * u + 16 + j)])
              << "cols " << cols << " row " << r;
        }
      }
    }
  }
}

TEST(Quant, Q4_0x8AppliesToWholeRunsOfQ4_0Only) {
  EXPECT_TRUE(q4_0x8_applies(GgmlType::Q4_0, 256));
  EXPECT_TRUE(q4_0x8_applies(GgmlType::Q4_0, 14336));
  EXPECT_FALSE(q4_0x8_applies(GgmlType::Q4_0, 288));
  EXPECT_FALSE(q4_0x8_applies(GgmlType::Q4_0, 0));
  EXPECT_FALSE(q4_0x8_applies(GgmlType::Q4_1, 4096));
  EXPECT_FALSE(q4_0x8_applies(GgmlType::Q8_0, 4096));
  uint8_t q[18 * 9] = {}, out[18 * 9];
  EXPECT_THROW(repack_q4_0x8(q, 1, 288, out), Error);
}

}  // namespace
}  // namespace fkv
