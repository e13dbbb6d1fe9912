#version 450
// RoPE in place on x [n, heads, head_dim], adjacent pairs. The host computes cos and sin of every
// (token, pair) angle with the CPU reference's formula, so all backends rotate by identical values;
// GPU sin/cos are not accurate for the large angles of long contexts. The table holds absolute positions
// and token i's position is the position register + i, so the same recorded dispatch serves every step.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cs[]; };  // [positions, pairs] (cos, sin)
layout(std430, binding = 2) readonly buffer Position { uint pos0; };  // the first token's position

layout(push_constant) uniform Params {
  uint n;
  uint heads;
  uint pairs;
  uint table_base;  // cs index of position `origin`'s first pair in binding 1
  uint origin;
} p;

#include "common/grid.glsl"

void main() {
  const uint total = p.n * p.heads * p.pairs;
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < total;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    const uint k = g % p.pairs;
    const uint i = g / (p.pairs * p.heads);
    const vec2 c = cs[p.table_base + (pos0 + i - p.origin) * p.pairs + k];
    const uint e = 2u * g;  // x index of the pair's first value: ((i * heads + h) * pairs + k) * 2
    const float a = x[e], b = x[e + 1u];
    x[e] = a * c.x - b * c.y;
    x[e + 1u] = a * c.y + b * c.x;
  }
}
