#include "backend/vulkan/vulkan_attention_plan.h"

#include <algorithm>

namespace fkv {
namespace {

constexpr uint32_t kBufFloats = 2048;  // attention_split.comp's BUF: scores of a span, the final sums
constexpr uint32_t kMaxHeadsPerWg = 8;
constexpr uint32_t kTileWords = 512;  // 16-byte words per K tile: 8 KiB, 4 per thread
}  // namespace

AttentionPlan plan_attention(int n, const AttentionShape& s, KvType type, uint32_t target,
                             uint32_t max_shared) {
  AttentionPlan p;
  const uint32_t d = uint32_t(s.head_dim), heads = uint32_t(s.n_heads),
                 group = heads / uint32_t(s.n_kv_heads);
  const uint32_t per_word = 16 / uint32_t(kv_type_bytes(type));  // cache values per 16-byte word
  // The largest divisor of the group size up to 8 whose query vectors and outputs fit the shader's buffer.
  uint32_t hc = 0;
  for (uint32_t c = std::min(group, kMaxHeadsPerWg); c >= 1 && hc == 0; --c)
    if (group % c == 0 && c * d <= kBufFloats) hc = c;
  const uint32_t words = d / per_word;  // per KV-head row
  if (hc > 0 && d % per_word == 0 && words <= kAttnGroupedWorkgroup) {
    const uint32_t tile = std::clamp<uint32_t>(kTileWords / words, 1, 128);
    const uint32_t shared =
        hc * d * 4 + tile * (words | 1) * 16 + kBufFloats * 4 + kAttnGroupedWorkgroup * 4 + hc * 4;
    if (shared <= max_shared) {
      p.grouped = true;
      p.heads_per_wg = hc;
      p.tile = tile;
      p.span = kBufFloats / hc / tile * tile;
      // One tile per chunk at least: a short context (decode at small depths) is spread over many short
      // chunks whose K and V arrive in one round of loads, rather than walked by a few workgroups.
      p.min_chunk = tile;
      p.shared_bytes = shared;
    }
  }
  if (!p.grouped) {
    p.heads_per_wg = 1;
    p.tile = p.min_chunk = kAttnRowsWorkgroup;
    p.shared_bytes = (d + 2 * kAttnRowsWorkgroup) * 4;
  }
  p.head_blocks = heads / p.heads_per_wg;
  const uint64_t units = uint64_t(std::max(n, 1)) * p.head_blocks;
  p.want = uint32_t(std::max<uint64_t>(1, target / std::min<uint64_t>(units, target)));
  return p;
}

}  // namespace fkv
