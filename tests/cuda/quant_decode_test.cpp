// The CUDA backend's block decoders (cuda/quant_device.cuh), compiled for the host, against the reference
// dequantize_row: whole 32-value units (embedding, prefill dequantization) and the 4-value quads of the
// decode matvec. Needs no GPU, so it runs in CI too.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "model/ggml_type.h"
#include "model/quant.h"
#include "quant_device.cuh"

namespace fkv::cuda {
namespace {

// repacked: the decoder reads the CUDA backend's Q4_0x8 copy of the rows, the reference the ggml bytes.
template <class F>
void check_format(GgmlType type, bool repacked = false) {
  const int64_t cols = 512, rows = 3;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> values(size_t(rows * cols));
  for (float& v : values) v = dist(rng);
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> w(rb * rows);
  quantize_row(type, values.data(), w.data(), rows * cols);
  std::vector<uint8_t> packed(w.size());
  if (repacked) repack_q4_0x8(w.data(), rows, cols, packed.data());
  std::vector<float> want(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, w.data() + rb * r, want.data(), cols);
    const uint8_t* row = (repacked ? packed.data() : w.data()) + rb * r;
    for (int u = 0; u < cols / 32; ++u) {
      Unit unit;
      F::load(row, u, unit);
      for (int j = 0; j < 32; ++j)
        ASSERT_NEAR(unit_value(unit, j), want[size_t(32 * u + j)], 1e-6f * (1.0f + std::fabs(want[32 * u + j])))
            << type_name(uint32_t(type)) << " unit " << u << " value " << j;
      for (int p = 0; p < 8; ++p) {
        Quad quad;
        F::load4(row, u, p, quad);
        for (int k = 0; k < 4; ++k)
          ASSERT_NEAR(std::fmaf(quad.a, quad.q[k], quad.b), want[size_t(32 * u + 4 * p + k)],
                      1e-6f * (1.0f + std::fabs(want[32 * u + 4 * p + k])))
              << type_name(uint32_t(type)) << " unit " << u << " quad " << p << " value " << k;
      }
    }
  }
}

TEST(CudaQuantDecode, Q4_0) { check_format<Q4_0>(GgmlType::Q4_0); }
TEST(CudaQuantDecode, Q4_0RepackedInRunsOf8) { check_format<Q4_0x8>(GgmlType::Q4_0, true); }
TEST(CudaQuantDecode, Q4_1) { check_format<Q4_1>(GgmlType::Q4_1); }
TEST(CudaQuantDecode, Q8_0) { check_format<Q8_0>(GgmlType::Q8_0); }
TEST(CudaQuantDecode, Q4_K) { check_format<Q4_K>(GgmlType::Q4_K); }
TEST(CudaQuantDecode, Q6_K) { check_format<Q6_K>(GgmlType::Q6_K); }

}  // namespace
}  // namespace fkv::cuda
