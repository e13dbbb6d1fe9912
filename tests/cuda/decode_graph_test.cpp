// The decode-step graph: a repeated one-token step (same buffers, only pos0 moving) is captured and
// replayed, and gives what eager execution gives; a step that changes falls back to eager execution.
#include "cuda_test_util.h"
#include "model/quant.h"

namespace fkv::test {
namespace {

using DecodeGraphTest = CudaOpTest;

// A miniature layer: norm, matvec, rope, kv_store, attention, add, then a download (the step's end).
struct MiniLayer {
  static constexpr int kDim = 128, kHeads = 2, kHeadDim = 64, kCapacity = 64;
  CudaOpTest::Pair x, w, norm_w, q, att, kc, vc;
  AttentionShape s{kHeads, kHeads, kHeadDim, 0.125f};
  RopeParams rope;

  explicit MiniLayer(CudaOpTest& t) {
    rope.head_dim = kHeadDim;
    std::vector<float> wv = t.random_floats(size_t(kDim) * kDim, -0.1f, 0.1f);
    std::vector<uint8_t> wq(row_bytes(GgmlType::Q4_0, kDim) * kDim);
    quantize_row(GgmlType::Q4_0, wv.data(), wq.data(), int64_t(kDim) * kDim);
    w = t.both(wq.data(), wq.size());
    x = t.both(t.random_floats(kDim));
    norm_w = t.both(t.random_floats(kDim, 0.5f, 1.5f));
    q = t.poisoned(kDim);
    att = t.poisoned(kDim);
    const size_t cache = size_t(kCapacity) * kDim * 2;
    kc = t.both(std::vector<uint8_t>(cache));
    vc = t.both(std::vector<uint8_t>(cache));
  }

  std::vector<float> step(CudaOpTest& t, Backend& b, bool gpu, int pos, bool variant = false) {
    auto pick = [&](CudaOpTest::Pair& p) -> DeviceBuffer& { return gpu ? *p.g : *p.c; };
    KvLayer layer{&pick(kc), &pick(vc), KvType::kF16, kCapacity};
    b.rms_norm(pick(x), pick(norm_w), 1, kDim, 1e-5f, pick(q));
    b.matmul(Weight{&pick(w), GgmlType::Q4_0, kDim, kDim}, pick(q), 1, pick(att));
    b.rope(pick(att), 1, kHeads, pos, rope);
    b.kv_store(pick(att), pick(att), 1, pos, s, layer);
    b.attention(pick(att), 1, pos, s, layer, pick(q));
    if (variant) b.add(pick(q), pick(q), kDim, pick(q));
    b.add(pick(x), pick(q), kDim, pick(x));
    return t.read(b, pick(x), kDim);
  }
};

TEST_F(DecodeGraphTest, ReplaysMatchEagerCpu) {
  MiniLayer m(*this);
  const int before = cuda_graph_replays(*gpu);
  for (int pos = 0; pos < 40; ++pos) {
    const bool variant = pos == 20;  // one step with another op sequence: eager, then the graph again
    const auto want = m.step(*this, *cpu, false, pos, variant);
    const auto got = m.step(*this, *gpu, true, pos, variant);
    ASSERT_LT(rel_error(got, want), 1e-4) << "step " << pos;
  }
  EXPECT_GE(cuda_graph_replays(*gpu) - before, 30) << "the repeated step was not replayed as a graph";
}

}  // namespace
}  // namespace fkv::test
