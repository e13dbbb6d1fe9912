#include "backend/cpu/cpu_dot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/quant.h"

namespace fkv {
namespace {

// The fast decode dot equals the reference dequantize-then-dot up to summation order (rel. 1e-5).
TEST(CpuDot, MatchesReferenceForEveryType) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                        GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K}) {
    for (int64_t n : {256, 512, 2304}) {
      const size_t count = static_cast<size_t>(n);
      std::vector<float> w(count), x(count), decoded(count);
      for (auto& v : w) v = d(rng);
      for (auto& v : x) v = d(rng);
      std::vector<uint8_t> q(row_bytes(type, n));
      quantize_row(type, w.data(), q.data(), n);
      dequantize_row(type, q.data(), decoded.data(), n);
      double want = 0, scale = 0;
      for (int64_t i = 0; i < n; ++i) {
        want += double(decoded[size_t(i)]) * x[size_t(i)];
        scale += std::abs(double(decoded[size_t(i)]) * x[size_t(i)]);
      }
      const float got = cpu::dot_quantized(type, q.data(), x.data(), n);
      EXPECT_LT(std::abs(got - want) / scale, 1e-5) << type_name(uint32_t(type)) << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace fkv
