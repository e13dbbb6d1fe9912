// How the full-cache attention splits its work over workgroups (shaders/attention_split.comp,
// attention_split_rows.comp, attention_merge.comp): a pure function of the shape, the cache type and the
// device, so that tests can check it without a GPU.
#pragma once
#include <cstdint>

#include "backend/backend.h"

namespace fkv {

constexpr uint32_t kAttnGroupedWorkgroup = 128;  // attention_split.comp's threads
constexpr uint32_t kAttnRowsWorkgroup = 64;      // attention_split_rows.comp's threads and keys per tile
constexpr uint32_t kAttnMergeWorkgroup = 128;  // attention_merge.comp's threads (the Vulkan minimum maximum)
constexpr uint32_t kAttnMergeDims = 16;        // and dims per merge workgroup
constexpr uint32_t kAttnGpuTarget = 512;       // chunk workgroups per step on a GPU (docs/VULKAN.md)
constexpr uint32_t kAttnCpuTarget = 16;        // lavapipe and other CPU devices

// Floats per chunk partial: acc (d), m, l, padded to a multiple of 4 (common/attention_chunks.glsl).
constexpr uint32_t attention_partial_stride(uint32_t d) {
  return (d + 5) & ~3u;
}

struct AttentionPlan {
  bool grouped = false;       // attention_split.comp; else the per-head fallback attention_split_rows.comp
  uint32_t heads_per_wg = 1;  // query heads per workgroup (HC), a divisor of the group size
  uint32_t head_blocks = 0;   // workgroups over heads: n_heads / heads_per_wg
  uint32_t tile = 0;          // keys per tile (TK); chunk lengths are multiples of it
  uint32_t span = 0;          // keys per softmax span (grouped)
  uint32_t min_chunk = 0;     // keys per chunk at least, a multiple of tile
  uint32_t want = 1;          // chunk workgroups dispatched per (query, head block)
  uint32_t shared_bytes = 0;  // the split shader's shared memory
};

// target: chunk workgroups wanted in all (kAttnGpuTarget, kAttnCpuTarget); max_shared: the device's
// maxComputeSharedMemorySize. The caller may still halve `want` to keep the partials in one binding.
AttentionPlan plan_attention(int n, const AttentionShape& s, KvType type, uint32_t target,
                             uint32_t max_shared);

}  // namespace fkv
