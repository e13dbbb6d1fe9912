// matmul on every weight type against the CPU reference: the decode matvec (fp32 accumulation: relative
// error < 1e-4) and the prefill GEMM (f16 operands on the tensor cores: < 2e-3; F32/BF16 stay fp32: < 1e-4).
#include "cuda_test_util.h"
#include "model/quant.h"

namespace fkv::test {
namespace {

using Matmul = CudaOpTest;

const GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                           GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K};

bool is_k_quant(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q6_K; }

// as_weight: uploaded with upload_weight, like the model loader (the backend's own layout, e.g. Q4_0 repacked
// in runs of 8 blocks when a row is a multiple of 256); else with plain upload (the GGUF layout).
void run_case(Matmul& t, GgmlType type, int64_t rows, int64_t cols, int n, bool as_weight = true) {
  std::vector<float> values = t.random_floats(size_t(rows * cols));
  std::vector<uint8_t> w(row_bytes(type, cols) * rows);
  quantize_row(type, values.data(), w.data(), rows * cols);
  auto x = t.both(t.random_floats(size_t(n) * cols, -2, 2));
  auto out = t.poisoned(size_t(n) * rows);
  if (as_weight) {
    auto wp = t.weights(w, type, rows, cols);
    t.cpu->matmul(wp.c, *x.c, n, *out.c);
    t.gpu->matmul(wp.g, *x.g, n, *out.g);
  } else {
    auto wb = t.both(w.data(), w.size());
    t.cpu->matmul(Weight{wb.c.get(), type, rows, cols}, *x.c, n, *out.c);
    t.gpu->matmul(Weight{wb.g.get(), type, rows, cols}, *x.g, n, *out.g);
  }
  const bool fp32_path = n <= 2 || type == GgmlType::F32 || type == GgmlType::BF16;
  const double tol = fp32_path ? 1e-4 : 2e-3;
  EXPECT_LT(t.rel_error(t.read_gpu(out, size_t(n) * rows), t.read_cpu(out, size_t(n) * rows)), tol)
      << type_name(uint32_t(type)) << " rows=" << rows << " cols=" << cols << " n=" << n
      << (as_weight ? " (upload_weight)" : " (upload)");
}

TEST_F(Matmul, DecodeEveryType) {
  for (GgmlType type : kTypes)
    for (int64_t rows : {1, 67, 1024, 4099})
      for (int64_t cols : {256, 576, 4096}) {
        if (is_k_quant(type) && cols % 256) continue;
        run_case(*this, type, rows, cols, 1);
      }
}

TEST_F(Matmul, DecodeManyRowsPerWarp) {
  // The persistent F16/BF16 matvec (rows a multiple of 1024 values) runs one wave of warps, each taking
  // several rows as one stream of passes: far more rows than resident warps, row lengths of 1, 3 and 14
  // passes, so that the prefetch of a warp's next row crosses row ends. Q4_0 (Q4_0x8 layout) at the same
  // shapes: many more rows than the grid has warps.
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0})
    for (int64_t cols : {1024, 3072, 14336}) run_case(*this, type, cols == 14336 ? 9001 : 20011, cols, 1);
}

TEST_F(Matmul, DecodeOddShapes) {
  // Row lengths that are not a multiple of the 16-byte vector width: the scalar kernels.
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int64_t cols : {1, 3, 33, 130}) run_case(*this, type, 45, cols, 1);
  // Quantized rows of one block and of an odd number of blocks.
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1}) {
    run_case(*this, type, 13, 32, 1);
    run_case(*this, type, 13, 32 * 37, 1);
  }
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) run_case(*this, type, 13, 256 * 3, 1);
}

TEST_F(Matmul, Q4_0InBothLayouts) {
  // Rows of a multiple of 256 values are repacked (Q4_0x8) by upload_weight; the GGUF layout stays readable
  // for buffers uploaded as plain bytes. Row counts around the kernel's rows per warp and warps per block.
  for (bool as_weight : {true, false})
    for (int64_t rows : {1, 2, 3, 5, 255, 1023, 1025})
      for (int64_t cols : {256, 768, 1536, 14336}) {  // 1, 3 (tail only), 6 (a pass and a tail), 56 runs
        run_case(*this, GgmlType::Q4_0, rows, cols, 1, as_weight);
        if (rows == 1025) run_case(*this, GgmlType::Q4_0, rows, cols, 40, as_weight);  // prefill: dequantized
      }
}

TEST_F(Matmul, TwoTokensUseMatvec) {
  for (GgmlType type : kTypes) run_case(*this, type, 333, 512, 2);
}

TEST_F(Matmul, PrefillEveryType) {
  for (GgmlType type : kTypes)
    for (int n : {3, 7, 64, 256}) {
      run_case(*this, type, 1000, 512, n);
      if (n == 7) run_case(*this, type, 96, 1536, n);
    }
}

TEST_F(Matmul, PrefillOddShapes) {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) run_case(*this, type, 45, 33, 5);
}

TEST_F(Matmul, RejectsShortWeightBuffer) {
  auto wb = both(std::vector<float>(10, 1.0f));
  auto x = both(random_floats(64));
  auto out = poisoned(64);
  EXPECT_THROW(gpu->matmul(Weight{wb.g.get(), GgmlType::F32, 64, 64}, *x.g, 1, *out.g), Error);
}

}  // namespace
}  // namespace fkv::test
