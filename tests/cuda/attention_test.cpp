// Full-cache attention against the CPU reference: decode (flash-decoding with split-KV) and prefill (tiled),
// head_dim 64 and 128 (and 8, the odd stories260K shape, on the generic path), GQA groups of 1, 2, 3, 4 and
// 8, sequence lengths 1, 7, 513 and 4100, f16 and fp32 caches, one and two query tokens, eager and replayed
// as a graph (splits for the whole cache, pos0 from the device scalar). The decode tests run both decode
// kernels and merges (attention_version 2, the default, and 1, FKV_CUDA_ATTN_V2=0), version 2 with its
// merge in the decode kernel's last block (the default) and as a combine launch (FKV_CUDA_ATTN_MERGE_LAST=0).
// The caches are filled through kv_store on each backend from the same values (kv_store is bit exact), so
// both read identical cache contents.
#include "cuda_kernels.h"
#include "cuda_test_util.h"

namespace fkv::test {
namespace {

using Attention = CudaOpTest;

struct Case {
  int n_heads, n_kv_heads, head_dim;
};

void run_case(Attention& t, const Case& c, KvType type, int pos0, int n) {
  AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
  const int len = pos0 + n, capacity = len + 5;
  const size_t row = size_t(c.n_kv_heads) * c.head_dim;
  const size_t cache_bytes = size_t(capacity) * row * kv_type_bytes(type);
  auto kc = t.both(std::vector<uint8_t>(cache_bytes, 0)), vc = t.both(std::vector<uint8_t>(cache_bytes, 0));
  KvLayer lc{kc.c.get(), vc.c.get(), type, capacity}, lg{kc.g.get(), vc.g.get(), type, capacity};
  // Larger keys make the softmax peaky, as in a trained model; values stay O(1).
  auto k = t.both(t.random_floats(size_t(len) * row, -3, 3));
  auto v = t.both(t.random_floats(size_t(len) * row));
  t.cpu->kv_store(*k.c, *v.c, len, 0, s, lc);
  t.gpu->kv_store(*k.g, *v.g, len, 0, s, lg);
  const size_t q_count = size_t(n) * c.n_heads * c.head_dim;
  auto q = t.both(t.random_floats(q_count, -3, 3));
  auto out = t.poisoned(q_count);
  t.cpu->attention(*q.c, n, pos0, s, lc, *out.c);
  t.gpu->attention(*q.g, n, pos0, s, lg, *out.g);
  EXPECT_LT(t.rel_error(t.read_gpu(out, q_count), t.read_cpu(out, q_count)), 1e-4)
      << "heads " << c.n_heads << "/" << c.n_kv_heads << " head_dim " << c.head_dim << " pos0 " << pos0 << " n "
      << n << (type == KvType::kF16 ? " f16" : " f32");
}

const Case kCases[] = {{9, 3, 64}, {32, 8, 128}, {4, 4, 128}, {8, 4, 8}, {16, 2, 128}, {12, 6, 64}};

// Runs f once with each decode kernel version (2 with either merge), then returns to the environment's
// choice.
template <class F>
void each_version(const F& f) {
  for (int mode : {0, 1, 2}) {
    const int version = mode == 2 ? 1 : 2;
    const bool merge_last = mode == 0;
    SCOPED_TRACE("attention version " + std::to_string(version) +
                 (merge_last ? ", merge in the last block" : ""));
    cuda::set_attention_version(version);
    cuda::set_attention_merge_last(merge_last ? 1 : 0);
    f();
  }
  cuda::set_attention_version(0);
  cuda::set_attention_merge_last(-1);
}

TEST_F(Attention, Decode) {
  each_version([&] {
    for (const Case& c : kCases)
      for (KvType type : {KvType::kF16, KvType::kF32})
        for (int len : {1, 7, 513, 4100}) run_case(*this, c, type, len - 1, 1);
  });
}

TEST_F(Attention, DecodeTwoTokens) {
  each_version([&] {
    for (const Case& c : kCases)
      for (KvType type : {KvType::kF16, KvType::kF32})
        for (int len : {2, 302, 4100}) run_case(*this, c, type, len - 2, 2);
  });
}

// One-token steps (kv_store + attention + download) over a long cache, crossing split boundaries: the step
// is captured as a graph and replayed with pos0 moving, against the CPU at every step.
TEST_F(Attention, DecodeGraphLongCache) {
  struct GraphCase {
    Case c;
    KvType type;
  };
  for (const GraphCase& g : {GraphCase{{32, 8, 128}, KvType::kF16}, GraphCase{{9, 3, 64}, KvType::kF32}})
    each_version([&] {
      gpu =
          create_cuda_backend(-1);  // a fresh graph: the same buffers could replay the other version's graph
      const Case& c = g.c;
      SCOPED_TRACE("head_dim " + std::to_string(c.head_dim));
      AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
      const int start = 500, steps = 40, capacity = 1100;
      const size_t row = size_t(c.n_kv_heads) * c.head_dim;
      const size_t cache_bytes = size_t(capacity) * row * kv_type_bytes(g.type);
      auto kc = both(std::vector<uint8_t>(cache_bytes, 0)), vc = both(std::vector<uint8_t>(cache_bytes, 0));
      KvLayer lc{kc.c.get(), vc.c.get(), g.type, capacity}, lg{kc.g.get(), vc.g.get(), g.type, capacity};
      auto k = both(random_floats(size_t(start) * row, -3, 3));
      auto v = both(random_floats(size_t(start) * row));
      cpu->kv_store(*k.c, *v.c, start, 0, s, lc);
      gpu->kv_store(*k.g, *v.g, start, 0, s, lg);
      const size_t q_count = size_t(c.n_heads) * c.head_dim;
      auto q = both(random_floats(q_count, -3, 3));
      auto kn = both(random_floats(row, -3, 3)), vn = both(random_floats(row));
      auto out = poisoned(q_count);
      const int replays = cuda_graph_replays(*gpu);
      // Positions 500 .. 519 (crossing 512), then 1014 .. 1033 (crossing 1024); the rows between stay zero on
      // both backends.
      for (int step = 0; step < steps; ++step) {
        const int pos = step < 20 ? start + step : 1024 - 30 + step;
        cpu->kv_store(*kn.c, *vn.c, 1, pos, s, lc);
        cpu->attention(*q.c, 1, pos, s, lc, *out.c);
        gpu->kv_store(*kn.g, *vn.g, 1, pos, s, lg);
        gpu->attention(*q.g, 1, pos, s, lg, *out.g);
        ASSERT_LT(rel_error(read_gpu(out, q_count), read_cpu(out, q_count)), 1e-4) << "step " << step;
      }
      EXPECT_GE(cuda_graph_replays(*gpu) - replays, steps - 10) << "the step was not replayed as a graph";
    });
}

TEST_F(Attention, Prefill) {
  for (const Case& c : kCases)
    for (KvType type : {KvType::kF16, KvType::kF32}) {
      run_case(*this, c, type, 0, 7);
      run_case(*this, c, type, 0, 513);
      run_case(*this, c, type, 4100 - 256, 256);  // a later prefill chunk over a long cache
      run_case(*this, c, type, 33, 3);
    }
}

TEST_F(Attention, RejectsPastTheCache) {
  AttentionShape s{4, 4, 64, 0.125f};
  auto kc = both(std::vector<uint8_t>(10 * 256 * 2)), vc = both(std::vector<uint8_t>(10 * 256 * 2));
  KvLayer lg{kc.g.get(), vc.g.get(), KvType::kF16, 10};
  auto q = both(random_floats(256));
  auto out = poisoned(256);
  EXPECT_THROW(gpu->attention(*q.g, 1, 10, s, lg, *out.g), Error);
}

}  // namespace
}  // namespace fkv::test
