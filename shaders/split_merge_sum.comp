#version 450
// Split-cache attention, merge step 1: sums the chunks' partials of one (query, head) column by column with
// the log-sum-exp weights exp(m_c − max): total l, acc[D] and (SPEC_V) h_c[N], h_s[N] (linear in the
// weights, so they merge like the output; h from chunks h_first.. only: with the decode middle pass the
// sink/window/call chunks carry none). The chunks come from two buffers: `part` (split_attention.comp's,
// p.chunks per query head) then `mpart` (the decode middle pass's, p.mid_chunks per query head), so that
// the two passes write different buffers and run side by side without a barrier between them.
// Workgroup = (block of CW columns, query head): CW neighbouring columns (coalesced) x CL chunk lanes, each
// lane 4 chunks in flight per step; the CL lane sums are added in shared memory. Writes sums[qh][PS]
// (column 0 unused); split_attention_merge.comp applies the V coefficients and divides. Before, one
// workgroup per query head (32 at the 8B shape) walked every chunk.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint D = 64u;
layout(constant_id = 1) const uint HN = 0u;  // frequencies of h per partial (0: none)

layout(std430, binding = 0) readonly buffer Partial { float part[]; };
layout(std430, binding = 1) writeonly buffer Sums { float sums[]; };
layout(std430, binding = 2) readonly buffer MidPartial { float mpart[]; };

layout(push_constant) uniform Params {
  uint chunks;      // in part, per query head
  uint count;       // queries * heads
  uint h_first;     // the first chunk (of the concatenation) that carries h
  uint mid_chunks;  // in mpart, per query head (0: none)
} p;

#include "common/grid.glsl"

const uint WG = 256u;
const uint CW = 32u;       // columns per workgroup
const uint CL = WG / CW;   // chunk lanes
const uint CB = 256u;      // chunks per weight block
const uint PS = D + 2u + 2u * HN;
shared float red[WG];
shared float w_s[CB];

// Column j of chunk c of query head qh, chunks of mpart following those of part.
float at(uint qh, uint c, uint j) {
  return c < p.chunks ? part[(qh * p.chunks + c) * PS + j] : mpart[(qh * p.mid_chunks + c - p.chunks) * PS + j];
}

void main() {
  const uint qh = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint chunks = p.chunks + p.mid_chunks;
  // The max over chunks: one load per invocation (per 256 chunks), then a tree in shared memory.
  float mx = kNegBig;
  for (uint c = tid; c < chunks; c += WG) mx = max(mx, at(qh, c, 0u));
  red[tid] = mx;
  barrier();
  [[unroll]] for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  mx = red[0];
  const uint col = tid % CW, lane = tid / CW;
  const uint j = gl_WorkGroupID.x * CW + col;
  const bool live = j >= 1u && j < PS;
  const uint c_lo = j >= 2u + D ? p.h_first : 0u;  // h columns: the chunks that carry h
  vec4 a = vec4(0.0);
  for (uint cb = 0u; cb < chunks; cb += CB) {
    const uint nb = min(CB, chunks - cb);
    barrier();  // w_s is free (and red[0] read)
    for (uint c = tid; c < nb; c += WG) w_s[c] = exp(at(qh, cb + c, 0u) - mx);
    barrier();
    if (live) {
      // Chunks cb + lane, + CL, ...: 4 independent sums, 4 loads in flight.
      // (cb is a multiple of CL.) The first chunk >= c_lo of this lane's residue.
      uint c = lane;
      if (cb + c < c_lo) c += (c_lo - cb - c + CL - 1u) / CL * CL;
      for (; c + 3u * CL < nb; c += 4u * CL) {
        const uint k = cb + c;
        a += vec4(at(qh, k, j), at(qh, k + CL, j), at(qh, k + 2u * CL, j), at(qh, k + 3u * CL, j)) *
             vec4(w_s[c], w_s[c + CL], w_s[c + 2u * CL], w_s[c + 3u * CL]);
      }
      for (; c < nb; c += CL) a.x += at(qh, cb + c, j) * w_s[c];
    }
  }
  barrier();  // red free
  red[tid] = (a.x + a.y) + (a.z + a.w);
  barrier();
  if (tid < CW && live) {
    float s = 0.0;
    [[unroll]] for (uint k = 0u; k < CL; ++k) s += red[k * CW + tid];
    sums[qh * PS + j] = s;
  }
}
