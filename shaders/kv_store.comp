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

uint to_half(float f) {
  const uint u = floatBitsToUint(f);
  const uint sign = (u >> 16) & 0x8000u;
  const uint a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0u);
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  if (a < 0x38800000u) {
    // Subnormal half: the value in units of 2^-24, rounded to nearest even. Shifting the float's
    // significand (implicit bit included) gives the same result as the reference's float arithmetic.
    const uint e = a >> 23;
    if (e < 102u) return sign;  // below 2^-25: rounds to zero
    const uint m = (a & 0x7FFFFFu) | 0x800000u;
    const uint shift = 126u - e;  // value = m * 2^(e - 150) = (m >> (126 - e)) units of 2^-24
    const uint q = m >> shift;
    const uint rem = m & ((1u << shift) - 1u);
    const uint half_ulp = 1u << (shift - 1u);
    const uint r = q + ((rem > half_ulp || (rem == half_ulp && (q & 1u) == 1u)) ? 1u : 0u);
    return sign | r;
  }
  uint h = (a >> 13) - (112u << 10);
  const uint rest = a & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) h += 1u;
  return sign | h;
}

void main() {
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < p.words;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    cache[p.cache_base + (pos0 - p.origin) * p.row_words + g] = to_half(src[2u * g]) | (to_half(src[2u * g + 1u]) << 16);
  }
}
