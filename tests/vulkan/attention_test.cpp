// Attention against the CPU reference: decode (n = 1) and prefill, GQA and not, head_dim 64 and 128,
// sequence lengths 1, 7, 513 and 4100, f16 and f32 caches.
#include "util/half.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

struct AttnCase {
  int n_heads, n_kv_heads, head_dim;
  int n, pos0;  // queries n at positions pos0 .. pos0+n-1: lengths up to pos0 + n
  KvType type;
};

class AttentionTest : public VulkanTest, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(AttentionTest, MatchesCpu) {
  const AttnCase c = GetParam();
  const AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
  const int cap = c.pos0 + c.n + 3;
  const size_t row = size_t(c.n_kv_heads) * c.head_dim, count = size_t(cap) * row;
  std::vector<uint8_t> kb(count * kv_type_bytes(c.type)), vb(kb.size());
  const std::vector<float> k = random_floats(count, 21, 2.0f), v = random_floats(count, 22);
  for (size_t i = 0; i < count; ++i) {
    if (c.type == KvType::kF16) {
      reinterpret_cast<uint16_t*>(kb.data())[i] = float_to_half(k[i]);
      reinterpret_cast<uint16_t*>(vb.data())[i] = float_to_half(v[i]);
    } else {
      reinterpret_cast<float*>(kb.data())[i] = k[i];
      reinterpret_cast<float*>(vb.data())[i] = v[i];
    }
  }
  auto [kv_, kc] = both_bytes(kb.data(), kb.size(), "K");
  auto [vv, vc] = both_bytes(vb.data(), vb.size(), "V");
  const size_t q_count = size_t(c.n) * c.n_heads * c.head_dim;
  auto [qv, qc] = both(random_floats(q_count, 23), "q");
  BufferPtr ov = poisoned(q_count * 4, "out"), oc = cpu->alloc(q_count * 4, "out");
  vk->attention(*qv, c.n, c.pos0, s, KvLayer{kv_.get(), vv.get(), c.type, cap}, *ov);
  cpu->attention(*qc, c.n, c.pos0, s, KvLayer{kc.get(), vc.get(), c.type, cap}, *oc);
  // Both read the same cache values; only the fp32 summation order differs.
  EXPECT_LT(max_rel_error(read(*vk, *ov, q_count), read(*cpu, *oc, q_count)), 1e-4);
}

const AttnCase kCases[] = {
    {9, 3, 64, 1, 0, KvType::kF16},      // length 1
    {9, 3, 64, 1, 6, KvType::kF16},      // length 7
    {9, 3, 64, 1, 512, KvType::kF16},    // length 513
    {9, 3, 64, 1, 4099, KvType::kF16},   // length 4100, split over many workgroups
    {8, 8, 128, 1, 4099, KvType::kF16},  // head_dim 128, no GQA
    {4, 2, 128, 1, 512, KvType::kF32},  {9, 3, 64, 7, 0, KvType::kF16},  // prefill from scratch
    {8, 2, 128, 7, 506, KvType::kF16},                                   // prefill chunk ending at 513
    {4, 1, 64, 33, 4067, KvType::kF16},                                  // prefill chunk ending at 4100
    {2, 1, 8, 5, 3, KvType::kF32},                                       // stories260K's head_dim 8
};

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest, ::testing::ValuesIn(kCases), [](const auto& info) {
  const AttnCase& c = info.param;
  return "h" + std::to_string(c.n_heads) + "kv" + std::to_string(c.n_kv_heads) + "d" +
         std::to_string(c.head_dim) + "n" + std::to_string(c.n) + "pos" + std::to_string(c.pos0) +
         (c.type == KvType::kF16 ? "f16" : "f32");
});

}  // namespace
}  // namespace fkv::test
