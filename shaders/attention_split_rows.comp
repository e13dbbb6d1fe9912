#version 450
// Causal attention, first pass, the general fallback of attention_split.comp for head sizes whose cache rows
// are not a whole number of 16-byte words (docs/VULKAN.md). Workgroup (chunk c, head h, query i) attends the cache rows of its chunk,
// [c * chunk_len, min((c + 1) * chunk_len, pos0 + i + 1)), with an online softmax, and writes the partial
// result (max score m, sum of exp l, unnormalised output acc) for attention_merge.comp to combine with a
// log-sum-exp. Splitting the sequence over workgroups lets one decode query fill the GPU. pos0 comes from
// the position register and the chunking from common/attention_chunks.glsl, so that one recorded dispatch
// of `want` chunk workgroups serves every position.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 64u;  // equals local_size_x; a power of two; keys per tile
layout(constant_id = 2) const uint D = 64u;   // head_dim
layout(constant_id = 3) const bool KV_F16 = true;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kc[]; };
layout(std430, binding = 2) readonly buffer V { uint vc[]; };
layout(std430, binding = 3) writeonly buffer Partial { float part[]; };  // [n, heads, want, stride]
layout(std430, binding = 4) readonly buffer Position { uint pos0; };

layout(push_constant) uniform Params {
  uint n;  // queries
  uint heads;
  uint kv_heads;
  float scale;
  uint want;       // chunk workgroups dispatched
  uint min_chunk;  // keys per chunk at least (common/attention_chunks.glsl), a multiple of WG
} p;

#include "common/attention_chunks.glsl"
#include "common/grid.glsl"

const uint DPT = (D + WG - 1u) / WG;  // output dims per thread

shared float q_s[D];
shared float p_s[WG];
shared float red[WG];


float key_dot(uint e0) {
  float s = 0.0;
  if (KV_F16) {
    for (uint j = 0u; j < D; j += 2u) {
      const vec2 k2 = unpackHalf2x16(kc[(e0 + j) >> 1]);
      s += q_s[j] * k2.x + q_s[j + 1u] * k2.y;
    }
  } else {
    for (uint j = 0u; j < D; ++j) s += q_s[j] * uintBitsToFloat(kc[e0 + j]);
  }
  return s;
}

float value_at(uint e) {
  if (KV_F16) {
    const vec2 v2 = unpackHalf2x16(vc[e >> 1]);
    return (e & 1u) == 0u ? v2.x : v2.y;
  }
  return uintBitsToFloat(vc[e]);
}

float reduce_max(float v, uint tid) {
  red[tid] = v;
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] = max(red[tid], red[tid + k]);
    barrier();
  }
  const float r = red[0];
  barrier();
  return r;
}

float reduce_sum(float v, uint tid) {
  red[tid] = v;
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] += red[tid + k];
    barrier();
  }
  const float r = red[0];
  barrier();
  return r;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint c = gl_WorkGroupID.x, h = gl_WorkGroupID.y, i = gl_WorkGroupID.z;
  const uint chunk_len = attention_chunk_len(pos0 + p.n, p.want, WG, p.min_chunk);
  if (c >= attention_chunks(pos0 + p.n, chunk_len)) return;  // uniform: the whole workgroup leaves
  const uint kvh = h / (p.heads / p.kv_heads);
  const uint kv_row = p.kv_heads * D;
  const uint len = pos0 + i + 1u;
  const uint start = c * chunk_len;
  const uint end = min(start + chunk_len, len);

  for (uint j = tid; j < D; j += WG) q_s[j] = q[(i * p.heads + h) * D + j];
  barrier();

  // m is the running max (uniform); each thread keeps its own share of the exp sum, rescaled with the
  // shared alpha, and the shares are added once at the end: one reduction per tile instead of two.
  float m = kNegBig, l_part = 0.0;
  float acc[DPT];
  [[unroll]] for (uint k = 0u; k < DPT; ++k) acc[k] = 0.0;

  for (uint t0 = start; t0 < end; t0 += WG) {
    const uint t = t0 + tid;
    const bool live = t < end;
    const float s = live ? key_dot(t * kv_row + kvh * D) * p.scale : kNegBig;
    const float m_new = max(m, reduce_max(s, tid));
    const float pr = live ? exp(s - m_new) : 0.0;
    p_s[tid] = pr;
    barrier();
    const float alpha = exp(m - m_new);
    l_part = l_part * alpha + pr;
    const uint tile = min(WG, end - t0);
    [[unroll]] for (uint k = 0u; k < DPT; ++k) {
      const uint d = tid + k * WG;
      if (d < D) {
        float a = acc[k] * alpha;
        for (uint j = 0u; j < tile; ++j) a += p_s[j] * value_at((t0 + j) * kv_row + kvh * D + d);
        acc[k] = a;
      }
    }
    m = m_new;
    barrier();  // p_s is rewritten by the next tile
  }
  const float l = reduce_sum(l_part, tid);

  const uint base = ((i * p.heads + h) * p.want + c) * attention_partial_stride(D);
  if (tid == 0u) {
    part[base + D] = m;
    part[base + D + 1u] = l;
  }
  [[unroll]] for (uint k = 0u; k < DPT; ++k) {
    const uint d = tid + k * WG;
    if (d < D) part[base + d] = acc[k];
  }
}
