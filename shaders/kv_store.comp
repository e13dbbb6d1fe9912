#version 450
// Converts fp32 K or V rows to f16 (round to nearest even, like util/half.h float_to_half, bit for bit)
// and writes them into the cache rows from the position register on. Two values per invocation: one 32-bit
// word of the cache.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) writeonly buffer Cache { uint cache[]; };
layout(std430, binding = 2) readonly buffer Position { uint pos0; };  // the first row to write

layout(push_constant) uniform Params {
  uint words;       // values / 2
  uint cache_base;  // word offset in binding 1 of cache row `origin`
  uint origin;
  uint row_words;   // words per cache row
} p;

#include "common/grid.glsl"
#include "common/half.glsl"

void main() {
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < p.words;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    cache[p.cache_base + (pos0 - p.origin) * p.row_words + g] =
        to_half(src[2u * g]) | (to_half(src[2u * g + 1u]) << 16);
  }
}
