#version 450
// out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w: one workgroup per row.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 256u;  // equals local_size_x; a power of two

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Params {
  uint dim;
  float eps;
} p;

#include "common/grid.glsl"

shared float red[WG];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint base = linear_workgroup() * p.dim;
  float s = 0.0;
  for (uint j = tid; j < p.dim; j += WG) s += x[base + j] * x[base + j];
  red[tid] = s;
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] += red[tid + k];
    barrier();
  }
  const float scale = 1.0 / sqrt(red[0] / float(p.dim) + p.eps);
  for (uint j = tid; j < p.dim; j += WG) o[base + j] = x[base + j] * scale * w[j];
}
