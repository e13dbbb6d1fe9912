// Full-cache attention against the CPU reference: decode (flash-decoding with split-KV) and prefill (tiled),
// head_dim 64 and 128 (and 8, the odd stories260K shape, on the generic path), GQA groups of 1, 3 and 4,
// sequence lengths 1, 7, 513 and 4100, f16 and fp32 caches. The caches are filled through kv_store on each
// backend from the same values (kv_store is bit exact), so both read identical cache contents.
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

const Case kCases[] = {{9, 3, 64}, {32, 8, 128}, {4, 4, 128}, {8, 4, 8}};

TEST_F(Attention, Decode) {
  for (const Case& c : kCases)
    for (KvType type : {KvType::kF16, KvType::kF32})
      for (int len : {1, 7, 513, 4100}) run_case(*this, c, type, len - 1, 1);
}

TEST_F(Attention, DecodeTwoTokens) {
  for (const Case& c : kCases) run_case(*this, c, KvType::kF16, 300, 2);
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
