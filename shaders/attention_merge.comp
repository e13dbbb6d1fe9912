#version 450
// Causal attention, second pass: combines the chunk partials of attention_split.comp (or
// attention_split_rows.comp) for one (query, head) with a log-sum-exp:
// out = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c, M the largest m_c, so no exp overflows. The
// chunk count follows from the position register like in the split shaders.
// Workgroup (query and head qh, block of DB dims). At most LANES chunks (short contexts): one round of loads,
// one barrier (below). More: the chunks are spread over the threads, not walked one after the other (a
// decode step at long context has tens of chunks or more, and a serial walk would wait on each load):
// the chunk weights exp(m_c - M) go to shared memory WG chunks at a time, and LANES = WG / DB threads per
// dim sum every LANES-th chunk, reading DB consecutive floats of a chunk's acc together.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;  // equals local_size_x; a power of two, a multiple of DB
layout(constant_id = 2) const uint D = 64u;    // head_dim
layout(constant_id = 3) const uint DB = 16u;   // dims per workgroup

layout(std430, binding = 0) readonly buffer Partial { float part[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) readonly buffer Position { uint pos0; };

layout(push_constant) uniform Params {
  uint n;       // queries
  uint groups;  // queries * heads * dim blocks
  uint want;    // chunk slots per (query, head) in the partials
  uint tile;    // the split shader's keys per tile
  uint min_chunk;
} p;

#include "common/attention_chunks.glsl"
#include "common/grid.glsl"

const uint LANES = WG / DB;
const uint BLOCKS = (D + DB - 1u) / DB;

shared float red[WG];
shared float w_s[WG];

float reduce(float v, bool take_max) {
  const uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] = take_max ? max(red[tid], red[tid + k]) : red[tid] + red[tid + k];
    barrier();
  }
  const float r = red[0];
  barrier();
  return r;
}

void main() {
  const uint id = linear_workgroup();
  if (id >= p.groups) return;  // uniform
  const uint qh = id / BLOCKS, d = (id % BLOCKS) * DB + gl_LocalInvocationID.x % DB;
  const uint tid = gl_LocalInvocationID.x, lane = tid / DB;
  const uint chunk_len = attention_chunk_len(pos0 + p.n, p.want, p.tile, p.min_chunk);
  const uint chunks = attention_chunks(pos0 + p.n, chunk_len);
  const uint PS = attention_partial_stride(D);
  const uint base = qh * p.want * PS;

  if (chunks <= LANES) {
    // Few chunks (short contexts): thread (lane, d) weighs chunk `lane` at dim d; every thread reads the
    // chunks' m and l itself (the same few words for the whole workgroup), so all loads go out in one round
    // and the lanes' sums meet in one barrier, instead of two tree reductions.
    float mc[LANES];
    float mx_few = kNegBig;
    [[unroll]] for (uint c = 0u; c < LANES; ++c) {
      mc[c] = c < chunks ? part[base + c * PS + D] : kNegBig;
      mx_few = max(mx_few, mc[c]);
    }
    float total_few = 0.0;
    [[unroll]] for (uint c = 0u; c < LANES; ++c)
      if (c < chunks) total_few += exp(mc[c] - mx_few) * part[base + c * PS + D + 1u];
    float a_few = 0.0;
    if (lane < chunks && d < D) {
      const uint b = base + lane * PS;
      a_few = exp(part[b + D] - mx_few) * part[b + d];
    }
    red[tid] = a_few;
    barrier();
    if (lane == 0u && d < D) {
      float s = 0.0;
      for (uint k = 0u; k < LANES; ++k) s += red[tid + k * DB];
      o[qh * D + d] = s / total_few;
    }
    return;
  }

  float mx = kNegBig;
  for (uint c = tid; c < chunks; c += WG) mx = max(mx, part[base + c * PS + D]);
  mx = reduce(mx, true);

  float l_part = 0.0, a = 0.0;
  for (uint c0 = 0u; c0 < chunks; c0 += WG) {
    if (c0 + tid < chunks) {
      const uint b = base + (c0 + tid) * PS;
      const float w = exp(part[b + D] - mx);
      w_s[tid] = w;
      l_part += w * part[b + D + 1u];
    }
    barrier();
    if (d < D) {
      const uint c1 = min(c0 + WG, chunks);
      for (uint c = c0 + lane; c < c1; c += LANES) a += w_s[c - c0] * part[base + c * PS + d];
    }
    barrier();
  }
  const float total = reduce(l_part, false);
  red[tid] = a;
  barrier();
  if (lane == 0u && d < D) {
    float s = 0.0;
    for (uint k = 0u; k < LANES; ++k) s += red[tid + k * DB];
    o[qh * D + d] = s / total;
  }
}
