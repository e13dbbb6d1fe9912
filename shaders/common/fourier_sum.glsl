// Body of fourier_project.comp and fourier_accumulate.comp: one invocation per (compressed dim c,
// frequency f) adds its rows in order, one at a time, like the CPU reference (fourier_transform.cpp), so the
// two give the same floats up to the device's rounding. Angles are exact integer indices (f·p) mod T into
// the basis table (the host requires N·T < 2^32).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Values { float values[]; };  // [rows, n_comp]
layout(std430, binding = 1) readonly buffer Table { vec2 basis[]; };     // cos, sin of 2π k / T
layout(std430, binding = 2) buffer Coef { float coef[]; };               // [n_comp, 2N]

layout(push_constant) uniform Params {
  uint rows;
  uint n_comp;
  uint m0;
  uint period;
  uint n_freq;
  uint values_base;  // float offset of row 0 in binding 0
  uint coef_base;    // float offset of dim 0 in binding 2
} p;

#include "common/grid.glsl"

void main() {
  const uint total = p.n_comp * p.n_freq;
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < total;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    const uint c = g / p.n_freq, f = g % p.n_freq;
    const uint step = f % p.period;
    uint idx = (f * p.m0) % p.period;
    const uint at = p.coef_base + c * 2u * p.n_freq + f;
    precise float cc = PROJECT ? 0.0 : coef[at];
    precise float ss = PROJECT ? 0.0 : coef[at + p.n_freq];
    for (uint i = 0u; i < p.rows; ++i) {
      const float x = values[p.values_base + i * p.n_comp + c];
      const vec2 b = basis[idx];
      precise float tc = x * b.x;
      precise float ts = x * b.y;
      cc += tc;
      ss += ts;
      idx += step;
      if (idx >= p.period) idx -= p.period;
    }
    coef[at] = cc;
    coef[at + p.n_freq] = ss;
  }
}
