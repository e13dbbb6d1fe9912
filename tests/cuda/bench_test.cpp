// Timings of the CUDA backend at Llama-3-8B shapes, for the GPU check script (disabled in normal runs: run
// with --gtest_also_run_disabled_tests --gtest_filter='*Bench*'). Until fkv-bench and random GGUF models
// exist, this drives the backend directly with the op sequence of Session::forward_chunk, on random weights
// (decode speed does not depend on weight values). Layers cycle through a few distinct weight sets, each
// far larger than L2, so every matvec streams from memory as in a real model.
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>

#include "cuda_kernels.h"
#include "cuda_test_util.h"
#include "fourier/fourier_profile.h"
#include "kv/split_kv_cache.h"
#include "model/quant.h"

namespace fkv::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  int dim = 4096, n_heads = 32, n_kv_heads = 8, head_dim = 128, ffn = 14336, vocab = 128256, n_layers = 32;
  int kv_dim() const { return n_kv_heads * head_dim; }
};

class Bench : public CudaOpTest {
 public:
  // A [rows, cols] weight of `type` on the GPU filled by tiling one random quantized slab.
  Weight make_weight(GgmlType type, int64_t rows, int64_t cols, std::vector<BufferPtr>& keep) {
    const size_t bytes = row_bytes(type, cols) * size_t(rows);
    BufferPtr buf = gpu->alloc(bytes, "bench weight");
    const size_t slab_rows = std::max<int64_t>(1, std::min<int64_t>(rows, (int64_t(1) << 22) / cols));
    std::vector<float> values = random_floats(size_t(slab_rows * cols), -0.05f, 0.05f);
    std::vector<uint8_t> slab(row_bytes(type, cols) * slab_rows);
    quantize_row(type, values.data(), slab.data(), int64_t(slab_rows) * cols);
    for (size_t off = 0; off < bytes; off += slab.size())
      gpu->upload(*buf, off, slab.data(), std::min(slab.size(), bytes - off));
    keep.push_back(buf);
    return Weight{buf.get(), type, rows, cols};
  }
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST_F(Bench, DISABLED_MatvecBandwidth) {
  std::vector<BufferPtr> keep;
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K,
                        GgmlType::Q4_1}) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4096, 4096}, {1024, 4096}, {14336, 4096},
                              {4096, 14336}, {128256, 4096}}) {
      const int copies = rows * cols > (int64_t(1) << 28) ? 2 : 4;  // the vocab matrix alone is far over L2
      std::vector<Weight> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(make_weight(type, rows, cols, keep));
      auto x = gpu->alloc(cols * 4, "x");
      auto out = gpu->alloc(rows * 4, "out");
      gpu->upload(*x, 0, random_floats(size_t(cols)).data(), cols * 4);
      for (int r = 0; r < 3; ++r) gpu->matmul(ws[r % copies], *x, 1, *out);
      gpu->synchronize();
      const int reps = 40;
      const auto t0 = Clock::now();
      for (int r = 0; r < reps; ++r) gpu->matmul(ws[r % copies], *x, 1, *out);
      gpu->synchronize();
      const double s = seconds_since(t0) / reps;
      const double gb = double(row_bytes(type, cols) * rows) / 1e9;
      std::printf("BENCH matvec %-5s %6lld x %-6lld %8.1f us  %7.1f GB/s\n", type_name(uint32_t(type)).c_str(),
                  (long long)rows, (long long)cols, s * 1e6, gb / s);
    std::fflush(stdout);  // a timed-out run keeps what it printed
      keep.clear();
    }
  }
}

// The decode step of a 32-layer 8B-shape model at a given depth, eager vs graph.
void decode_bench(Bench& t, GgmlType type, int depth, int distinct_layers) {
  Shape sh;
  std::vector<BufferPtr> keep;
  struct L {
    Weight wq, wk, wv, wo, gate, up, down;
  };
  std::vector<L> layers;
  for (int l = 0; l < distinct_layers; ++l)
    layers.push_back(L{t.make_weight(type, sh.dim, sh.dim, keep), t.make_weight(type, sh.kv_dim(), sh.dim, keep),
                       t.make_weight(type, sh.kv_dim(), sh.dim, keep), t.make_weight(type, sh.dim, sh.dim, keep),
                       t.make_weight(type, sh.ffn, sh.dim, keep), t.make_weight(type, sh.ffn, sh.dim, keep),
                       t.make_weight(type, sh.dim, sh.ffn, keep)});
  Weight output = t.make_weight(type, sh.vocab, sh.dim, keep);
  Backend& be = *t.gpu;
  auto f = [&](size_t n, const char* what) { return be.alloc(n * 4, what); };
  auto x = f(sh.dim, "x"), xb = f(sh.dim, "xb"), q = f(sh.dim, "q"), k = f(sh.kv_dim(), "k"),
       v = f(sh.kv_dim(), "v"), att = f(sh.dim, "att"), hb = f(sh.ffn, "hb"), hb2 = f(sh.ffn, "hb2"),
       logits = f(sh.vocab, "logits"), norm = f(sh.dim, "norm");
  be.upload(*x, 0, t.random_floats(sh.dim).data(), sh.dim * 4);
  be.upload(*norm, 0, t.random_floats(sh.dim, 0.5f, 1.5f).data(), sh.dim * 4);
  const int capacity = depth + 128;
  AttentionShape s{sh.n_heads, sh.n_kv_heads, sh.head_dim, 1.0f / std::sqrt(float(sh.head_dim))};
  std::vector<KvLayer> kv;
  {
    // Random cache contents up to depth (f16 of uniform values), written through kv_store in chunks.
    auto kr = f(size_t(512) * sh.kv_dim(), "kv rows");
    be.upload(*kr, 0, t.random_floats(size_t(512) * sh.kv_dim()).data(), size_t(512) * sh.kv_dim() * 4);
    for (int l = 0; l < sh.n_layers; ++l) {
      BufferPtr kc = be.alloc(size_t(capacity) * sh.kv_dim() * 2, "K"), vc = be.alloc(size_t(capacity) * sh.kv_dim() * 2, "V");
      keep.push_back(kc);
      keep.push_back(vc);
      kv.push_back(KvLayer{kc.get(), vc.get(), KvType::kF16, capacity});
      for (int p = 0; p < depth; p += 512) be.kv_store(*kr, *kr, std::min(512, depth - p), p, s, kv.back());
    }
  }
  RopeParams rope;
  rope.head_dim = sh.head_dim;
  rope.theta = 500000.0f;
  std::vector<float> host_logits(sh.vocab);
  auto step = [&](int pos) {
    for (int l = 0; l < sh.n_layers; ++l) {
      const L& w = layers[size_t(l % distinct_layers)];
      be.rms_norm(*x, *norm, 1, sh.dim, 1e-5f, *xb);
      be.matmul(w.wq, *xb, 1, *q);
      be.matmul(w.wk, *xb, 1, *k);
      be.matmul(w.wv, *xb, 1, *v);
      be.rope(*q, 1, sh.n_heads, pos, rope);
      be.rope(*k, 1, sh.n_kv_heads, pos, rope);
      be.kv_store(*k, *v, 1, pos, s, kv[size_t(l)]);
      be.attention(*q, 1, pos, s, kv[size_t(l)], *att);
      be.matmul(w.wo, *att, 1, *xb);
      be.add(*x, *xb, sh.dim, *x);
      be.rms_norm(*x, *norm, 1, sh.dim, 1e-5f, *xb);
      be.matmul(w.gate, *xb, 1, *hb);
      be.matmul(w.up, *xb, 1, *hb2);
      be.swiglu(*hb, *hb2, sh.ffn, *hb);
      be.matmul(w.down, *hb, 1, *xb);
      be.add(*x, *xb, sh.dim, *x);
    }
    be.rms_norm(*x, *norm, 1, sh.dim, 1e-5f, *xb);
    be.matmul(output, *xb, 1, *logits);
    be.download(*logits, 0, host_logits.data(), host_logits.size() * 4);
  };
  for (int i = 0; i < 3; ++i) step(depth + i);
  const int reps = 30;
  const int replays0 = cuda_graph_replays(be);
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) step(depth + 3 + i % 100);
  const double sec = seconds_since(t0) / reps;
  size_t weight_bytes = row_bytes(type, sh.dim) * size_t(sh.vocab);
  weight_bytes += size_t(sh.n_layers) * (row_bytes(type, sh.dim) * size_t(2 * sh.dim + 2 * sh.kv_dim() + 2 * sh.ffn) +
                                         row_bytes(type, sh.ffn) * size_t(sh.dim));
  const double kv_bytes = double(depth) * sh.kv_dim() * 2 * 2 * sh.n_layers;
  std::printf("BENCH decode %-5s depth %6d graph %-3s %8.3f ms/token %7.1f tok/s  %6.0f GB/s (weights %.2f GB + KV %.2f GB)"
              " replays %d\n",
              type_name(uint32_t(type)).c_str(), depth, cuda_graph_replays(be) > replays0 ? "on" : "off", sec * 1e3,
              1.0 / sec, (double(weight_bytes) + kv_bytes) / sec / 1e9, weight_bytes / 1e9, kv_bytes / 1e9,
              cuda_graph_replays(be) - replays0);
    std::fflush(stdout);  // a timed-out run keeps what it printed
  EXPECT_TRUE(std::isfinite(host_logits[0]));
}

TEST_F(Bench, DISABLED_Decode8B) {
  const char* graph_env = std::getenv("FKV_CUDA_GRAPH");
  std::printf("BENCH device %s, FKV_CUDA_GRAPH=%s\n", gpu->device_name().c_str(), graph_env ? graph_env : "(on)");
    std::fflush(stdout);  // a timed-out run keeps what it printed
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0})
    for (int depth : {0, 32768}) decode_bench(*this, type, depth, 4);
}

TEST_F(Bench, DISABLED_Attention32K) {
  Shape sh;
  AttentionShape s{sh.n_heads, sh.n_kv_heads, sh.head_dim, 1.0f / std::sqrt(float(sh.head_dim))};
  const int depth = 32768, capacity = depth + 256;
  std::vector<BufferPtr> keep;
  BufferPtr kc = gpu->alloc(size_t(capacity) * sh.kv_dim() * 2, "K"), vc = gpu->alloc(size_t(capacity) * sh.kv_dim() * 2, "V");
  KvLayer kv{kc.get(), vc.get(), KvType::kF16, capacity};
  auto kr = gpu->alloc(size_t(512) * sh.kv_dim() * 4, "rows");
  gpu->upload(*kr, 0, random_floats(size_t(512) * sh.kv_dim()).data(), size_t(512) * sh.kv_dim() * 4);
  for (int p = 0; p < capacity; p += 512) gpu->kv_store(*kr, *kr, std::min(512, capacity - p), p, s, kv);
  auto q = gpu->alloc(size_t(256) * sh.dim * 4, "q"), out = gpu->alloc(size_t(256) * sh.dim * 4, "out");
  gpu->upload(*q, 0, random_floats(size_t(256) * sh.dim).data(), size_t(256) * sh.dim * 4);
  // Each decode kernel and merge: version 2 (the default) with its merge in the last block and with a combine
  // launch (FKV_CUDA_ATTN_MERGE_LAST=0), and 1 (FKV_CUDA_ATTN_V2=0), same machine and call.
  struct Mode {
    int version, merge_last;
  };
  for (int n : {1, 256})
    for (const Mode& mode : {Mode{2, 1}, Mode{2, 0}, Mode{1, 0}, Mode{2, 1}}) {
      const int version = mode.version;
      cuda::set_attention_version(version);
      cuda::set_attention_merge_last(mode.merge_last);
      gpu->attention(*q, n, depth - n, s, kv, *out);
      gpu->synchronize();
      const int reps = n == 1 ? 200 : 5;
      const auto t0 = Clock::now();
      for (int r = 0; r < reps; ++r) gpu->attention(*q, n, depth - n, s, kv, *out);
      gpu->synchronize();
      const double sec = seconds_since(t0) / reps;
      const double bytes = double(depth) * sh.kv_dim() * 2 * 2;
      const double flops = 4.0 * n * double(depth) * sh.n_heads * sh.head_dim;
      std::printf("BENCH attention v%d%s n=%d depth %d: %8.1f us  %6.0f GB/s of KV  %6.1f TFLOP/s\n", version,
                  mode.merge_last ? " merged" : "", n, depth, sec * 1e6, bytes / sec / 1e9,
                  flops / sec / 1e12);
      std::fflush(stdout);  // a timed-out run keeps what it printed
    }
  cuda::set_attention_version(0);
  cuda::set_attention_merge_last(-1);
}

// One 8B-shape layer of the split KV cache (fourier: S 4, W 1020, N 512, 80% of dims compressed; window:
// S 4, W 1020) against the full cache: decode attention, a one-token append, a 256-token prefill chunk.
TEST_F(Bench, DISABLED_SplitAttention) {
  Shape sh;
  AttentionShape s{sh.n_heads, sh.n_kv_heads, sh.head_dim, 1.0f / std::sqrt(float(sh.head_dim))};
  std::printf("BENCH device %s\n", gpu->device_name().c_str());
  auto rows = gpu->alloc(size_t(256) * sh.kv_dim() * 4, "rows");
  gpu->upload(*rows, 0, random_floats(size_t(256) * sh.kv_dim(), -2, 2).data(),
              size_t(256) * sh.kv_dim() * 4);
  auto q = gpu->alloc(size_t(256) * sh.dim * 4, "q"), out = gpu->alloc(size_t(256) * sh.dim * 4, "out");
  gpu->upload(*q, 0, random_floats(size_t(256) * sh.dim).data(), size_t(256) * sh.dim * 4);
  auto time = [&](int reps, const std::function<void()>& f) {
    f();
    gpu->synchronize();
    const auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) f();
    gpu->synchronize();
    return seconds_since(t0) / reps * 1e6;
  };
  for (int depth : {8192, 32768, 130816}) {
    const int capacity = depth + 256;
    for (const char* policy : {"full", "fourier", "window"}) {
      std::unique_ptr<KvCache> full;
      std::unique_ptr<SplitKvCache> split;
      double t_dec = 0, t_app = 0, t_pre = 0;
      if (std::string(policy) == "full") {
        full = make_full_kv_cache(*gpu, 1, s, capacity, KvType::kF16);
        for (int p = 0; p < depth; p += 256) full->store(0, *rows, *rows, std::min(256, depth - p), p);
        full->store(0, *rows, *rows, 1, depth);
        t_dec = time(50, [&] { full->attend(0, *q, 1, depth, *out); });
      } else {
        SplitKvConfig c;
        c.policy = policy;
        c.n_layers = 1;
        c.shape = s;
        c.capacity = capacity;
        c.sink = 4;
        c.window = 1020;
        c.n_freq = 512;
        c.least_squares_norm = true;
        if (c.policy == "fourier") {
          const FourierProfile pr = heuristic_fourier_profile(1, s.n_kv_heads, s.head_dim, 0.8);
          c.k_dims.push_back(split_dims(pr.layers[0].k, s.head_dim));
          c.v_dims.push_back(split_dims(pr.layers[0].v, s.head_dim));
        }
        split = std::make_unique<SplitKvCache>(*gpu, c);
        auto& L = const_cast<SplitKvLayer&>(split->layer(0));
        const auto t0 = Clock::now();
        for (int p = 0; p < depth; p += 256)
          gpu->split_kv_append(*rows, *rows, std::min(256, depth - p), p, s, L);
        gpu->synchronize();
        std::printf("BENCH split %-7s depth %6d: fill %.2f s\n", policy, depth, seconds_since(t0));
        t_dec = time(50, [&] {
          gpu->split_attention(*q, *rows, *rows, 1, depth, s, L, SplitAttentionPath::kAuto, *out);
        });
        t_app = time(50, [&] { gpu->split_kv_append(*rows, *rows, 1, depth, s, L); });
        t_pre = time(3, [&] {
          gpu->split_attention(*q, *rows, *rows, 256, depth - 256, s, L, SplitAttentionPath::kAuto, *out);
        });
      }
      std::printf(
          "BENCH split %-7s depth %6d: decode attention %8.1f us, one-token append %7.1f us, "
          "256-token chunk attention %9.1f us\n",
          policy, depth, t_dec, t_app, t_pre);
      std::fflush(stdout);  // a timed-out run keeps what it printed
    }
  }
}

TEST_F(Bench, DISABLED_PrefillGemm) {
  std::vector<BufferPtr> keep;
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0}) {
    Weight w = make_weight(type, 14336, 4096, keep);
    const int n = 256;
    auto x = gpu->alloc(size_t(n) * 4096 * 4, "x"), out = gpu->alloc(size_t(n) * 14336 * 4, "out");
    gpu->upload(*x, 0, random_floats(size_t(n) * 4096).data(), size_t(n) * 4096 * 4);
    gpu->matmul(w, *x, n, *out);
    gpu->synchronize();
    const int reps = 20;
    const auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) gpu->matmul(w, *x, n, *out);
    gpu->synchronize();
    const double sec = seconds_since(t0) / reps;
    std::printf("BENCH prefill gemm %-5s 256 x 14336 x 4096: %8.1f us  %6.1f TFLOP/s\n",
                type_name(uint32_t(type)).c_str(), sec * 1e6, 2.0 * n * 14336 * 4096 / sec / 1e12);
    std::fflush(stdout);  // a timed-out run keeps what it printed
    keep.clear();
  }
}

}  // namespace
}  // namespace fkv::test
