#version 450
// Split KV cache append (backend.h split_kv_append): fp32 rows of the chunk into the cache's sink rows or
// window ring, converted to the cache type (f16 rounding like util/half.h); K's rows (bindings 0, 1) and
// V's (3, 4) in one dispatch, invocations [0, total) K's and [total, 2 total) V's. Row r (chunk row
// src_row0 + r, position pos_first + r) goes to row pos_first + r (ring == 0: the sink) or
// (pos_first + r - sink) % ring. pos_first is the position register plus first_rel, so that a decode step's
// command is the same at every position (a recorded step replays).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool KV_F16 = true;

layout(std430, binding = 0) readonly buffer SrcK { float src_k[]; };
layout(std430, binding = 1) writeonly buffer DstK { uint dst_k[]; };
layout(std430, binding = 2) readonly buffer Position { uint pos_reg; };  // the chunk's first position
layout(std430, binding = 3) readonly buffer SrcV { float src_v[]; };
layout(std430, binding = 4) writeonly buffer DstV { uint dst_v[]; };

layout(push_constant) uniform Params {
  uint count;      // rows
  uint row_len;    // values per row (even for f16)
  uint src_row0;
  uint first_rel;  // pos_first − pos_reg
  uint sink;
  uint ring;       // W, or 0 for the sink
  uint dst_base;   // word offset of row 0 in binding 1
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"

void main() {
  const uint per_row = KV_F16 ? p.row_len / 2u : p.row_len;
  const uint total = p.count * per_row;
  for (uint gi = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; gi < 2u * total;
       gi += linear_workgroup_count() * gl_WorkGroupSize.x) {
    const bool is_v = gi >= total;
    const uint g = is_v ? gi - total : gi;
    const uint r = g / per_row, w = g % per_row;
    const uint pos = pos_reg + p.first_rel + r;
    const uint row = p.ring == 0u ? pos : (pos - p.sink) % p.ring;
    const uint s = (p.src_row0 + r) * p.row_len, at = p.dst_base + row * per_row + w;
    uint word;
    if (KV_F16) {
      const vec2 x = is_v ? vec2(src_v[s + 2u * w], src_v[s + 2u * w + 1u])
                          : vec2(src_k[s + 2u * w], src_k[s + 2u * w + 1u]);
      word = to_half(x.x) | (to_half(x.y) << 16);
    } else {
      word = floatBitsToUint(is_v ? src_v[s + w] : src_k[s + w]);
    }
    if (is_v)
      dst_v[at] = word;
    else
      dst_k[at] = word;
  }
}
