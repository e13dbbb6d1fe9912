#version 450
// A residual add followed by the RMSNorm of its sum, in one dispatch (one barrier fewer on each side):
// sum[i, :] = a[i, :] + b[i, :], then out[i, :] = sum[i, :] / sqrt(mean(sum[i, :]^2) + eps) * w, one
// workgroup per row. sum may alias a or b, and out may alias a or b (not sum): each element is read in the
// first loop and written (sum) or read back and written (out) in the second by the same invocation. Same
// arithmetic as elementwise.comp (OP 0) followed by rms_norm.comp.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 256u;  // equals local_size_x; a power of two

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) buffer Sum { float sum[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) writeonly buffer Out { float o[]; };

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
  for (uint j = tid; j < p.dim; j += WG) {
    const float v = a[base + j] + b[base + j];
    sum[base + j] = v;
    s += v * v;
  }
  red[tid] = s;
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] += red[tid + k];
    barrier();
  }
  const float scale = 1.0 / sqrt(red[0] / float(p.dim) + p.eps);
  for (uint j = tid; j < p.dim; j += WG) o[base + j] = sum[base + j] * scale * w[j];
}
