// The CUDA backend's small ops against the CPU reference: RMSNorm, RoPE, SwiGLU, add, copy, kv_store, embed.
#include <cstring>

#include "cuda_test_util.h"
#include "model/quant.h"
#include "util/half.h"

namespace fkv::test {
namespace {

using ElementwiseOps = CudaOpTest;

TEST_F(ElementwiseOps, RmsNorm) {
  for (int n : {1, 7, 33})
    for (int dim : {64, 576, 4096, 67}) {
      auto x = both(random_floats(size_t(n) * dim, -3, 3));
      auto w = both(random_floats(size_t(dim), 0.5f, 1.5f));
      auto out = poisoned(size_t(n) * dim);
      cpu->rms_norm(*x.c, *w.c, n, dim, 1e-5f, *out.c);
      gpu->rms_norm(*x.g, *w.g, n, dim, 1e-5f, *out.g);
      EXPECT_LT(rel_error(read_gpu(out, size_t(n) * dim), read_cpu(out, size_t(n) * dim)), 1e-6)
          << "n=" << n << " dim=" << dim;
    }
}

TEST_F(ElementwiseOps, Rope) {
  for (int head_dim : {64, 128, 8})
    for (bool llama3 : {false, true})
      for (int n : {1, 7})
        for (int pos0 : {0, 513, 4100, 32000}) {
          RopeParams p;
          p.head_dim = head_dim;
          p.theta = llama3 ? 500000.0f : 10000.0f;
          p.llama3 = llama3;
          p.factor = 8.0f;
          const int heads = 5;
          const size_t count = size_t(n) * heads * head_dim;
          auto x = both(random_floats(count));
          cpu->rope(*x.c, n, heads, pos0, p);
          gpu->rope(*x.g, n, heads, pos0, p);
          // Same angles (the CPU's frequency table), accurate sin/cos on both sides.
          EXPECT_LT(rel_error(read_gpu(x, count), read_cpu(x, count)), 1e-5)
              << "head_dim=" << head_dim << " llama3=" << llama3 << " n=" << n << " pos0=" << pos0;
        }
}

TEST_F(ElementwiseOps, SwigluAndAdd) {
  for (int64_t count : {int64_t(1), int64_t(1000), int64_t(14336 * 3 + 5)}) {
    auto g = both(random_floats(size_t(count), -8, 8));
    auto u = both(random_floats(size_t(count), -2, 2));
    auto out = poisoned(size_t(count));
    cpu->swiglu(*g.c, *u.c, count, *out.c);
    gpu->swiglu(*g.g, *u.g, count, *out.g);
    EXPECT_LT(rel_error(read_gpu(out, size_t(count)), read_cpu(out, size_t(count))), 1e-6) << count;
    // In place, as the engine calls it (out aliases gate; out aliases a).
    cpu->swiglu(*g.c, *u.c, count, *g.c);
    gpu->swiglu(*g.g, *u.g, count, *g.g);
    EXPECT_LT(rel_error(read_gpu(g, size_t(count)), read_cpu(g, size_t(count))), 1e-6) << count;
    // add on identical inputs (the in-place swiglu results differ in the last bits: expf) is exact.
    auto a = both(random_floats(size_t(count), -8, 8));
    cpu->add(*a.c, *u.c, count, *a.c);
    gpu->add(*a.g, *u.g, count, *a.g);
    EXPECT_EQ(read_gpu(a, size_t(count)), read_cpu(a, size_t(count))) << count;
  }
}

TEST_F(ElementwiseOps, Copy) {
  auto src = both(random_floats(1000));
  auto dst = poisoned(1000);
  cpu->copy(*src.c, 40, *dst.c, 400, 2000);
  gpu->copy(*src.g, 40, *dst.g, 400, 2000);
  const auto a = read_gpu(dst, 1000), b = read_cpu(dst, 1000);
  for (size_t i = 0; i < 1000; ++i) {
    if (std::isnan(b[i]))
      EXPECT_TRUE(std::isnan(a[i])) << i;
    else
      EXPECT_EQ(a[i], b[i]) << i;
  }
}

// f16 round-to-nearest-even must match the CPU bit for bit, ties, subnormals and overflow included.
TEST_F(ElementwiseOps, KvStoreBitExact) {
  for (KvType type : {KvType::kF16, KvType::kF32}) {
    AttentionShape s{8, 2, 64, 0.125f};
    const int capacity = 20, n = 7, pos0 = 11;
    const size_t row = size_t(s.n_kv_heads) * s.head_dim;
    std::vector<float> k = random_floats(n * row, -70000, 70000), v = random_floats(n * row, -1e-4f, 1e-4f);
    // Exact f16 ties and tiny values.
    k[0] = 1.0f + 1.0f / 2048.0f;
    k[1] = 1.0f + 3.0f / 2048.0f;
    k[2] = 65520.0f;
    k[3] = 5.96e-8f;
    k[4] = -2.98e-8f;
    auto kb = both(k), vb = both(v);
    const size_t bytes = capacity * row * kv_type_bytes(type);
    std::vector<uint8_t> fill(bytes, 0xAB);
    auto kc = both(fill.data(), bytes), vc = both(fill.data(), bytes);
    KvLayer lc{kc.c.get(), vc.c.get(), type, capacity}, lg{kc.g.get(), vc.g.get(), type, capacity};
    cpu->kv_store(*kb.c, *vb.c, n, pos0, s, lc);
    gpu->kv_store(*kb.g, *vb.g, n, pos0, s, lg);
    for (auto* pair : {&kc, &vc}) {
      std::vector<uint8_t> a(bytes), b(bytes);
      cpu->download(*pair->c, 0, b.data(), bytes);
      gpu->download(*pair->g, 0, a.data(), bytes);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << "type " << int(type);
    }
    EXPECT_THROW(gpu->kv_store(*kb.g, *vb.g, n, capacity - 3, s, lg), Error);
  }
}

TEST_F(ElementwiseOps, EmbedEveryType) {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                        GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const int64_t rows = 37, cols = 512;
    std::vector<float> values = random_floats(size_t(rows * cols));
    std::vector<uint8_t> table(row_bytes(type, cols) * rows);
    quantize_row(type, values.data(), table.data(), rows * cols);
    auto t = weights(table, type, rows, cols);  // as the loader uploads it: Q4_0 is repacked
    const std::vector<int32_t> ids{3, 0, 36, 3, 17};
    auto idb = both(ids);
    const int n = int(ids.size());
    auto out = poisoned(size_t(n) * cols);
    cpu->embed(t.c, *idb.c, n, *out.c);
    gpu->embed(t.g, *idb.g, n, *out.g);
    EXPECT_LT(rel_error(read_gpu(out, size_t(n) * cols), read_cpu(out, size_t(n) * cols)), 1e-6)
        << type_name(uint32_t(type));
  }
}

}  // namespace
}  // namespace fkv::test
