// Attention against the CPU reference: decode (n = 1) and prefill, GQA group sizes 1 to 16, head_dim 64
// and 128 (and odd sizes that take the per-head fallback), sequence lengths 1, 7, 513 and 4100, f16 and
// f32 caches; each case with lavapipe's chunking (few chunks, several softmax spans per chunk) and a GPU's
// (many chunks of at least 128 keys); each with the merge inside the split dispatch (fusion on, the default)
// and as a dispatch of its own (fusion off). Plus the chunk rule of vulkan_attention_plan.h.
#include <algorithm>
#include <sstream>
#include <utility>

#include "backend/vulkan/vulkan_attention_plan.h"
#include "util/half.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

struct AttnCase {
  int n_heads, n_kv_heads, head_dim;
  int n, pos0;  // queries n at positions pos0 .. pos0+n-1: lengths up to pos0 + n
  KvType type;
};

class AttentionTest : public VulkanTest,
                      public ::testing::WithParamInterface<std::tuple<AttnCase, uint32_t, bool>> {
 protected:
  void TearDown() override {
    vulkan_set_attention_target(*vk, 0);
    vulkan_set_fusion(*vk, true);
    VulkanTest::TearDown();
  }
};

TEST_P(AttentionTest, MatchesCpu) {
  const auto [c, target, fused] = GetParam();
  vulkan_set_attention_target(*vk, target);
  vulkan_set_fusion(*vk, fused);
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
    {4, 2, 128, 1, 512, KvType::kF32},
    {9, 3, 64, 7, 0, KvType::kF16},      // prefill from scratch
    {8, 2, 128, 7, 506, KvType::kF16},   // prefill chunk ending at 513
    {4, 1, 64, 33, 4067, KvType::kF16},  // prefill chunk ending at 4100
    {2, 1, 8, 5, 3, KvType::kF32},       // stories260K's head_dim 8
    // G = 4 (Llama-3-8B: 32 heads over 8 KV heads) and G = 8, head_dim 64 and 128, lengths 1, 7, 513, 4100
    {32, 8, 128, 1, 0, KvType::kF16},
    {32, 8, 128, 1, 6, KvType::kF16},
    {32, 8, 128, 1, 512, KvType::kF16},
    {32, 8, 128, 1, 4099, KvType::kF16},
    {8, 2, 64, 1, 0, KvType::kF16},
    {8, 2, 64, 1, 6, KvType::kF16},
    {8, 2, 64, 1, 512, KvType::kF16},
    {8, 2, 64, 1, 4099, KvType::kF16},
    {16, 2, 128, 1, 0, KvType::kF16},
    {16, 2, 128, 1, 6, KvType::kF16},
    {16, 2, 128, 1, 512, KvType::kF16},
    {16, 2, 128, 1, 4099, KvType::kF16},
    {8, 1, 64, 1, 0, KvType::kF16},
    {8, 1, 64, 1, 6, KvType::kF16},
    {8, 1, 64, 1, 512, KvType::kF16},
    {8, 1, 64, 1, 4099, KvType::kF16},
    {32, 8, 128, 1, 4099, KvType::kF32},  // f32 cache: 4 values per 16-byte word
    {8, 1, 64, 1, 4099, KvType::kF32},
    {16, 2, 128, 9, 4091, KvType::kF16},  // prefill chunk ending at 4100, G = 8
    {32, 8, 128, 3, 4, KvType::kF32},     // prefill from near scratch, G = 4
    {16, 1, 64, 2, 4098, KvType::kF16},   // G = 16: two blocks of 8 heads per KV head
    {12, 1, 128, 1, 4099, KvType::kF16},  // G = 12: blocks of 6
    {6, 2, 96, 1, 4099, KvType::kF16},    // head_dim 96: 12 words per row, tiles of 42 rows
    {4, 2, 6, 3, 600, KvType::kF16},      // head_dim 6: rows not whole 16-byte words, per-head fallback
};

std::string case_name(const ::testing::TestParamInfo<std::tuple<AttnCase, uint32_t, bool>>& info) {
  const AttnCase& c = std::get<0>(info.param);
  std::ostringstream o;
  o << "h" << c.n_heads << "kv" << c.n_kv_heads << "d" << c.head_dim << "n" << c.n << "pos" << c.pos0
    << (c.type == KvType::kF16 ? "f16" : "f32") << "t" << std::get<1>(info.param)
    << (std::get<2>(info.param) ? "" : "unfused");
  return o.str();
}

// Targets: lavapipe's (16: few long chunks, several spans each) and a GPU's (512: many short chunks).
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(16u, 512u),
                                            ::testing::Bool()),
                         case_name);

// The chunk rule on the Llama-3-8B shape at a GPU's target: one workgroup per (chunk, KV head) serving the
// 4 query heads, kAttnGpuTarget (512, measured best on an H100 at 32K against 1024 and 2048) / 8 chunks at
// long context, one K tile (32 keys) per chunk at least, so that a short context is spread over several
// short chunks (decode at depth 0) rather than walked by one workgroup per KV head.
TEST(AttentionPlan, LlamaEightBDecode) {
  EXPECT_EQ(kAttnGpuTarget, 512u);
  const AttentionShape s{32, 8, 128, 1.0f / std::sqrt(128.0f)};
  const AttentionPlan p = plan_attention(1, s, KvType::kF16, kAttnGpuTarget, 32768);
  EXPECT_TRUE(p.grouped);
  EXPECT_EQ(p.heads_per_wg, 4u);
  EXPECT_EQ(p.head_blocks, 8u);
  EXPECT_EQ(p.want * p.head_blocks, kAttnGpuTarget);
  EXPECT_EQ(p.tile, 32u);
  EXPECT_EQ(p.min_chunk, p.tile);
  // Keys per chunk and chunks as shaders/common/attention_chunks.glsl computes them.
  const auto chunks = [&](uint32_t len) {
    const uint32_t per = std::max(p.min_chunk, ((len + p.want - 1) / p.want + p.tile - 1) / p.tile * p.tile);
    return std::pair<uint32_t, uint32_t>{per, (len + per - 1) / per};
  };
  EXPECT_EQ(chunks(1), (std::pair<uint32_t, uint32_t>{32, 1}));
  EXPECT_EQ(chunks(100), (std::pair<uint32_t, uint32_t>{32, 4}));
  EXPECT_EQ(chunks(2048), (std::pair<uint32_t, uint32_t>{32, 64}));
  EXPECT_EQ(chunks(32768), (std::pair<uint32_t, uint32_t>{512, 64}));
  EXPECT_EQ(p.span % p.tile, 0u);
  EXPECT_LE(p.shared_bytes, 32768u);
  // Prefill of 512 queries: one chunk per (query, KV head) is enough work.
  EXPECT_EQ(plan_attention(512, s, KvType::kF16, kAttnGpuTarget, 32768).want, 1u);
  // G = 8 at head_dim 128 and f32 caches stay within lavapipe's 32 KiB.
  EXPECT_LE(
      plan_attention(1, AttentionShape{64, 8, 128, 1}, KvType::kF32, kAttnGpuTarget, 32768).shared_bytes,
      32768u);
  EXPECT_TRUE(plan_attention(1, AttentionShape{64, 8, 256, 1}, KvType::kF16, kAttnGpuTarget, 32768).grouped);
  // A device with less shared memory gets the fallback rather than a pipeline it cannot run.
  EXPECT_FALSE(plan_attention(1, s, KvType::kF16, kAttnGpuTarget, 8192).grouped);
}

}  // namespace
}  // namespace fkv::test
