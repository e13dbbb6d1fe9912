#version 450
// RoPE of K fused with its store into the f16 cache (rope.comp then kv_store.comp, without the barrier
// between them): each invocation rotates one adjacent pair of x [n, heads, head_dim] in place, with the
// table's cos/sin of position (register + token), and writes the rotated pair as one f16 word of the cache
// row (register + token). A pair's index is its cache word's index in the rows being written.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cs[]; };  // [positions, pairs] (cos, sin)
layout(std430, binding = 2) readonly buffer Position { uint pos0; };
layout(std430, binding = 3) writeonly buffer Cache { uint cache[]; };

layout(push_constant) uniform Params {
  uint n;
  uint heads;
  uint pairs;
  uint table_base;  // cs index of position `origin`'s first pair in binding 1
  uint origin;
  uint cache_base;  // word offset in binding 3 of cache row `cache_origin`
  uint cache_origin;
  uint row_words;   // words per cache row (heads * pairs)
} p;

#include "common/grid.glsl"
#include "common/half.glsl"

void main() {
  const uint total = p.n * p.heads * p.pairs;
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < total;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    const uint k = g % p.pairs;
    const uint i = g / (p.pairs * p.heads);
    const vec2 c = cs[p.table_base + (pos0 + i - p.origin) * p.pairs + k];
    const uint e = 2u * g;
    const float a = x[e], b = x[e + 1u];
    const float ra = a * c.x - b * c.y, rb = a * c.y + b * c.x;
    x[e] = ra;
    x[e + 1u] = rb;
    cache[p.cache_base + (pos0 - p.cache_origin) * p.row_words + g] = to_half(ra) | (to_half(rb) << 16);
  }
}
