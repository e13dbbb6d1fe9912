#version 450
// Causal attention, second pass: combines the chunk partials of attention_split.comp for one
// (query, head) with a log-sum-exp: out = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c. The chunk
// count follows from the position register like in attention_split.comp.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64u;  // head_dim

layout(std430, binding = 0) readonly buffer Partial { float part[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) readonly buffer Position { uint pos0; };

layout(push_constant) uniform Params {
  uint n;      // queries
  uint count;  // queries * heads
  uint want;   // chunk slots per (query, head) in the partials
  uint tile;   // attention_split.comp's keys per tile
} p;

#include "common/attention_chunks.glsl"
#include "common/grid.glsl"

void main() {
  const uint qh = linear_workgroup();  // i * heads + h
  if (qh >= p.count) return;
  const uint chunks = attention_chunks(pos0 + p.n, attention_chunk_len(pos0 + p.n, p.want, p.tile));
  const uint base = qh * p.want * (D + 2u);
  float mx = kNegBig;
  for (uint c = 0u; c < chunks; ++c) mx = max(mx, part[base + c * (D + 2u)]);
  float total = 0.0;
  for (uint c = 0u; c < chunks; ++c) {
    const uint b = base + c * (D + 2u);
    total += part[b + 1u] * exp(part[b] - mx);
  }
  for (uint d = gl_LocalInvocationID.x; d < D; d += gl_WorkGroupSize.x) {
    float a = 0.0;
    for (uint c = 0u; c < chunks; ++c) {
      const uint b = base + c * (D + 2u);
      a += part[b + 2u + d] * exp(part[b] - mx);
    }
    o[qh * D + d] = a / total;
  }
}
