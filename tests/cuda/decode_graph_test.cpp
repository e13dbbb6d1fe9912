// The decode-step graph: a repeated one-token step (same buffers, only pos0 moving) is captured and
// replayed, and gives what eager execution gives; a step that changes falls back to eager execution.
#include <cstdlib>

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

// A self-contained step as Session issues it (Backend::begin_step's promise: token ids in, activations
// written before they are read, KV cache rows carried): once replayed, the graph is launched at the step's
// first op. Steps that stop matching after that launch (another op sequence, another position) must still
// give the eager result, as must steps at positions that move back (a regenerated reply).
TEST_F(DecodeGraphTest, EarlyLaunchMatchesEagerCpu) {
  constexpr int kDim = 128, kHeads = 2, kHeadDim = 64, kCapacity = 64, kVocab = 96;
  auto quantized = [&](int rows, int cols) {
    std::vector<float> values = random_floats(size_t(rows) * cols, -0.1f, 0.1f);
    std::vector<uint8_t> bytes(row_bytes(GgmlType::Q4_0, cols) * rows);
    quantize_row(GgmlType::Q4_0, values.data(), bytes.data(), int64_t(rows) * cols);
    return weights(bytes, GgmlType::Q4_0, rows, cols);
  };
  WeightPair table = quantized(kVocab, kDim), wq = quantized(kDim, kDim), out = quantized(kVocab, kDim);
  Pair tokens = both(std::vector<int32_t>{0}), norm_w = both(random_floats(kDim, 0.5f, 1.5f));
  Pair x = poisoned(kDim), xb = poisoned(kDim), q = poisoned(kDim), att = poisoned(kDim), logits = poisoned(kVocab);
  Pair kc = both(std::vector<uint8_t>(size_t(kCapacity) * kDim * 2));
  Pair vc = both(std::vector<uint8_t>(size_t(kCapacity) * kDim * 2));
  const AttentionShape s{kHeads, kHeads, kHeadDim, 0.125f};
  RopeParams rope;
  rope.head_dim = kHeadDim;
  auto step = [&](Backend& b, bool gpu, int32_t token, int pos, bool variant) {
    auto pick = [&](Pair& p) -> DeviceBuffer& { return gpu ? *p.g : *p.c; };
    auto w = [&](WeightPair& p) -> const Weight& { return gpu ? p.g : p.c; };
    KvLayer layer{&pick(kc), &pick(vc), KvType::kF16, kCapacity};
    b.upload(pick(tokens), 0, &token, sizeof token);
    b.begin_step(pos, 1);
    b.embed(w(table), pick(tokens), 1, pick(x));
    b.rms_norm(pick(x), pick(norm_w), 1, kDim, 1e-5f, pick(xb));
    b.matmul(w(wq), pick(xb), 1, pick(q));
    b.rope(pick(q), 1, kHeads, pos, rope);
    b.kv_store(pick(q), pick(q), 1, pos, s, layer);
    if (variant) b.add(pick(q), pick(q), kDim, pick(q));  // the step stops matching after its early launch
    b.attention(pick(q), 1, pos, s, layer, pick(att));
    b.add(pick(x), pick(att), kDim, pick(x));
    b.matmul(w(out), pick(x), 1, pick(logits));
    return read(b, pick(logits), kVocab);
  };
  const int replays0 = cuda_graph_replays(*gpu), early0 = cuda_early_launches(*gpu);
  int pos = 0;
  for (int i = 0; i < 48; ++i) {
    const int32_t token = int32_t(rng() % kVocab);
    const bool variant = i == 20 || i == 21;
    if (i == 34) pos = 9;  // back to an earlier position: the promise names it, the graph replays there
    const auto want = step(*cpu, false, token, pos, variant);
    const auto got = step(*gpu, true, token, pos, variant);
    ASSERT_LT(rel_error(got, want), 1e-4) << "step " << i << " at " << pos;
    ++pos;
  }
  EXPECT_GE(cuda_graph_replays(*gpu) - replays0, 36) << "the repeated step was not replayed as a graph";
  EXPECT_GE(cuda_early_launches(*gpu) - early0, 36) << "the replays were not launched at the step's first op";
}

// A whole decode layer in Session's op order, weights uploaded as the loader does (Q4_0 repacked): once the
// step replays as a graph, the q/k/v and gate/up matvecs, rope + kv_store and add + RMSNorm run fused.
struct FullLayer {
  static constexpr int kKvHeads = 2, kHeadDim = 64, kCapacity = 48, kKvDim = kKvHeads * kHeadDim;
  const int kDim, kHeads, kFfn;
  GgmlType type;
  CudaOpTest::WeightPair wq, wk, wv, wo, wg, wu, wd;
  CudaOpTest::Pair x, n1, n2, xb, q, k, v, att, hb, hb2, kc, vc;
  AttentionShape s;
  RopeParams rope;

  CudaOpTest::WeightPair matrix(CudaOpTest& t, int64_t rows, int64_t cols) {
    std::vector<float> values = t.random_floats(size_t(rows * cols), -0.1f, 0.1f);
    std::vector<uint8_t> bytes(row_bytes(type, cols) * rows);
    quantize_row(type, values.data(), bytes.data(), rows * cols);
    return t.weights(bytes, type, rows, cols);
  }

  FullLayer(CudaOpTest& t, GgmlType weight_type, int dim, int ffn)
      : kDim(dim), kHeads(dim / kHeadDim), kFfn(ffn), type(weight_type), s{kHeads, kKvHeads, kHeadDim, 0.125f} {
    rope.head_dim = kHeadDim;
    wq = matrix(t, kDim, kDim);
    wk = matrix(t, kKvDim, kDim);
    wv = matrix(t, kKvDim, kDim);
    wo = matrix(t, kDim, kDim);
    wg = matrix(t, kFfn, kDim);
    wu = matrix(t, kFfn, kDim);
    wd = matrix(t, kDim, kFfn);
    x = t.both(t.random_floats(kDim));
    n1 = t.both(t.random_floats(kDim, 0.5f, 1.5f));
    n2 = t.both(t.random_floats(kDim, 0.5f, 1.5f));
    for (auto* p : {&xb, &q, &att}) *p = t.poisoned(kDim);
    for (auto* p : {&k, &v}) *p = t.poisoned(kKvDim);
    for (auto* p : {&hb, &hb2}) *p = t.poisoned(kFfn);
    kc = t.both(std::vector<uint8_t>(size_t(kCapacity) * kKvDim * 2));
    vc = t.both(std::vector<uint8_t>(size_t(kCapacity) * kKvDim * 2));
  }

  // Returns the next layer's normalised input.
  std::vector<float> step(CudaOpTest& t, Backend& b, bool gpu, int pos) {
    auto pick = [&](CudaOpTest::Pair& p) -> DeviceBuffer& { return gpu ? *p.g : *p.c; };
    auto w = [&](CudaOpTest::WeightPair& p) -> const Weight& { return gpu ? p.g : p.c; };
    KvLayer layer{&pick(kc), &pick(vc), KvType::kF16, kCapacity};
    b.rms_norm(pick(x), pick(n1), 1, kDim, 1e-5f, pick(xb));
    b.matmul(w(wq), pick(xb), 1, pick(q));
    b.matmul(w(wk), pick(xb), 1, pick(k));
    b.matmul(w(wv), pick(xb), 1, pick(v));
    b.rope(pick(q), 1, kHeads, pos, rope);
    b.rope(pick(k), 1, kKvHeads, pos, rope);
    b.kv_store(pick(k), pick(v), 1, pos, s, layer);
    b.attention(pick(q), 1, pos, s, layer, pick(att));
    b.matmul(w(wo), pick(att), 1, pick(xb));
    b.add(pick(x), pick(xb), kDim, pick(x));
    b.rms_norm(pick(x), pick(n2), 1, kDim, 1e-5f, pick(xb));
    b.matmul(w(wg), pick(xb), 1, pick(hb));
    b.matmul(w(wu), pick(xb), 1, pick(hb2));
    b.swiglu(pick(hb), pick(hb2), kFfn, pick(hb));
    b.matmul(w(wd), pick(hb), 1, pick(xb));
    b.add(pick(x), pick(xb), kDim, pick(x));
    b.rms_norm(pick(x), pick(n1), 1, kDim, 1e-5f, pick(xb));
    return t.read(b, pick(xb), kDim);  // one read a step (x carries into the next step)
  }
};

// Each shape with the RoPE and KV store folded into the q/k/v launch (the default) and as a launch of their
// own (FKV_CUDA_ROPE_FOLD=0, read when a backend is made), from the same inputs: both must give the same bits
// (the fold computes each row's sum as the unfused kernel does and rotates with the same code,
// rope_device.cuh).
TEST_F(DecodeGraphTest, FusedLayerMatchesCpu) {
  struct Shape {
    GgmlType type;
    int dim, ffn;
    // gate/up/SwiGLU as one launch, and q/k/v with rope/store as one launch: Q4_0x8, or F16 rows of a
    // multiple of 1024 (persistent kernel); a warp holds both rows of a pair.
    bool gated;
  };
  std::vector<std::vector<float>> folded_steps(4);
  for (bool fold : {true, false}) {
    SCOPED_TRACE(fold ? "rope folded into q/k/v" : "FKV_CUDA_ROPE_FOLD=0");
    setenv("FKV_CUDA_ROPE_FOLD", fold ? "1" : "0", 1);
    gpu = create_cuda_backend(-1);
    unsetenv("FKV_CUDA_ROPE_FOLD");
    const Shape shapes[] = {{GgmlType::Q4_0, 256, 512, true},
                            {GgmlType::F16, 256, 512, false},
                            {GgmlType::F16, 1024, 1024, true},
                            {GgmlType::Q4_0, 1024, 1536, true}};
    for (size_t k = 0; k < 4; ++k) {
      const Shape& sh = shapes[k];
      SCOPED_TRACE(type_name(uint32_t(sh.type)) + " dim " + std::to_string(sh.dim));
      rng.seed(unsigned(100 + k));  // the same inputs in both passes
      FullLayer m(*this, sh.type, sh.dim, sh.ffn);
      std::vector<float> steps;
      const int replays = cuda_graph_replays(*gpu), fused = cuda_fused_ops(*gpu),
                folds = cuda_rope_folds(*gpu);
      for (int pos = 0; pos < FullLayer::kCapacity; ++pos) {
        const auto want = m.step(*this, *cpu, false, pos);
        const auto got = m.step(*this, *gpu, true, pos);
        ASSERT_LT(rel_error(got, want), 1e-4) << "step " << pos;
        steps.insert(steps.end(), got.begin(), got.end());
      }
      if (fold)
        folded_steps[k] = steps;
      else
        EXPECT_TRUE(steps == folded_steps[k]) << "the folded and the unfused q/k/v + rope/store differ";
      EXPECT_GE(cuda_graph_replays(*gpu) - replays, FullLayer::kCapacity - 4);
      // q/k/v (3), gate/up (2) or gate/up/SwiGLU (3), rope/rope/store/store (4), add + norm twice (4) in the
      // captured graph.
      EXPECT_GE(cuda_fused_ops(*gpu) - fused, sh.gated ? 14 : 13);
      if (fold && sh.gated)
        EXPECT_GE(cuda_rope_folds(*gpu) - folds, 1) << "q/k/v and rope/store were not one launch";
      else
        EXPECT_EQ(cuda_rope_folds(*gpu) - folds, 0);
    }
  }
}

}  // namespace
}  // namespace fkv::test
