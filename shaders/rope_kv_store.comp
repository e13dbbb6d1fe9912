#version 450
// A layer's RoPE of q and K and the store of K and V into the f16 cache in one dispatch (rope.comp on q,
// rope.comp on K, kv_store.comp on K and V, without the barrier between them). Invocation g takes one pair:
//   g < qp:            pair g of q [n, q_heads, head_dim], rotated in place;
//   g < qp + kp:       pair j = g - qp of K [n, kv_heads, head_dim], rotated in place and written as one f16
//                      word of the cache rows (register + token); j is that word's index in the rows written;
//   g < qp + 2 kp:     pair j = g - qp - kp of V, written as one f16 word of the V cache.
// Rotation and rounding are the expressions of rope.comp and kv_store.comp, so the results are the same bit
// for bit. The table's cos/sin and the cache rows are found from the position register, so the dispatch is
// the same at every step. q_heads may be 0 (K and V only; binding 0 then aliases K and is not touched).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer Q { float q[]; };
layout(std430, binding = 1) buffer K { float kx[]; };
layout(std430, binding = 2) readonly buffer V { float vx[]; };
layout(std430, binding = 3) readonly buffer Table { vec2 cs[]; };  // [positions, pairs] (cos, sin)
layout(std430, binding = 4) readonly buffer Position { uint pos0; };
layout(std430, binding = 5) writeonly buffer CacheK { uint cache_k[]; };
layout(std430, binding = 6) writeonly buffer CacheV { uint cache_v[]; };

layout(push_constant) uniform Params {
  uint n;
  uint q_heads;
  uint kv_heads;
  uint pairs;
  uint table_base;  // cs index of position `origin`'s first pair in binding 3
  uint origin;
  uint k_base;  // word offset in binding 5 of cache row `cache_origin`
  uint v_base;  // word offset in binding 6 of cache row `cache_origin`
  uint cache_origin;
} p;

#include "common/grid.glsl"
#include "common/half.glsl"

// cos/sin of pair j of a tensor with `heads` heads per token.
vec2 angle(uint j, uint heads) {
  const uint k = j % p.pairs;
  const uint i = j / (p.pairs * heads);
  return cs[p.table_base + (pos0 + i - p.origin) * p.pairs + k];
}

void main() {
  const uint qp = p.n * p.q_heads * p.pairs;
  const uint kp = p.n * p.kv_heads * p.pairs;  // also the V words and the cache words written per tensor
  const uint row_words = p.kv_heads * p.pairs;
  const uint cache_row = (pos0 - p.cache_origin) * row_words;
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < qp + 2u * kp;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    if (g < qp) {
      const vec2 c = angle(g, p.q_heads);
      const uint e = 2u * g;
      const float a = q[e], b = q[e + 1u];
      q[e] = a * c.x - b * c.y;
      q[e + 1u] = a * c.y + b * c.x;
    } else if (g < qp + kp) {
      const uint j = g - qp;
      const vec2 c = angle(j, p.kv_heads);
      const uint e = 2u * j;
      const float a = kx[e], b = kx[e + 1u];
      const float ra = a * c.x - b * c.y, rb = a * c.y + b * c.x;
      kx[e] = ra;
      kx[e + 1u] = rb;
      cache_k[p.k_base + cache_row + j] = to_half(ra) | (to_half(rb) << 16);
    } else {
      const uint j = g - qp - kp;
      cache_v[p.v_base + cache_row + j] = to_half(vx[2u * j]) | (to_half(vx[2u * j + 1u]) << 16);
    }
  }
}
