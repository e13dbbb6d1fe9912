// RMSNorm of rows, optionally of the sum of two rows (a residual add fused with the norm of its sum):
//   FKV_ADD 0: out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w
//   FKV_ADD 1: sum[i, :] = a[i, :] + b[i, :], then out[i, :] = the norm of sum[i, :] as above
// One workgroup per row. Included by rms_norm.comp, rms_norm_subgroup.comp, add_rms_norm.comp and
// add_rms_norm_subgroup.comp, which define FKV_ADD and FKV_SUBGROUP_ADD (subgroupAdd for the row's sum: only
// where the device has subgroup arithmetic in compute, since a module that declares it is invalid elsewhere).
//
// Why it is shaped this way: a decode call is one row (4096 floats on an 8B model), so its time is latency,
// not bandwidth. Each invocation loads its part of the row (and of w) in one go before anything waits on a
// load: R slots per invocation, unrolled, a slot being a vec4 when dim % 4 == 0 (16-byte loads: the row
// starts 16-byte aligned) else a float; the values stay in registers for the write, so the row is read once
// and there is one reduction (one barrier with subgroupAdd). A row longer than R slots per invocation runs
// the rest as a loop (correct for any dim, slower). The host sizes WG and R from dim and the device.
//
// Aliasing: sum may alias a or b, and out may alias a or b (not sum): every element is read by the
// invocation that later writes it, before the barrier of the reduction.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FKV_SUBGROUP_ADD
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 1024u;  // equals local_size_x; a power of two
layout(constant_id = 2) const uint R = 1u;      // slots per invocation held in registers

// Each buffer is declared twice on one binding (aliases): as floats and as vec4 for the 16-byte loads.
#if FKV_ADD
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 2) buffer Sum { float sum[]; };
layout(std430, binding = 2) buffer Sum4 { vec4 sum4[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 3) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 4) writeonly buffer Out { float o[]; };
layout(std430, binding = 4) writeonly buffer Out4 { vec4 o4[]; };
#define LOAD4(i) (a4[i] + b4[i])
#define LOAD1(i) (a[i] + b[i])
#define READ_BACK4(i) sum4[i]
#define READ_BACK1(i) sum[i]
#else
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 1) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 o4[]; };
#define LOAD4(i) x4[i]
#define LOAD1(i) x[i]
#define READ_BACK4(i) x4[i]
#define READ_BACK1(i) x[i]
#endif

layout(push_constant) uniform Params {
  uint dim;
  float eps;
} p;

#include "common/grid.glsl"

shared float red[WG];

// The workgroup's sum of s, returned to every invocation.
float row_sum(float s) {
  const uint tid = gl_LocalInvocationID.x;
#if FKV_SUBGROUP_ADD
  // One sum per subgroup, then every subgroup adds the gl_NumSubgroups sums itself (no second barrier):
  // any subgroup size works (lavapipe 8, NVIDIA 32, AMD 64).
  s = subgroupAdd(s);
  if (subgroupElect()) red[gl_SubgroupID] = s;
  barrier();
  float t = 0.0;
  for (uint k = gl_SubgroupInvocationID; k < gl_NumSubgroups; k += gl_SubgroupSize) t += red[k];
  return subgroupAdd(t);
#else
  red[tid] = s;
  barrier();
  [[unroll]] for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k) red[tid] += red[tid + k];
    barrier();
  }
  return red[0];
#endif
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row = linear_workgroup();
  float s = 0.0;
  if (p.dim % 4u == 0u) {
    const uint n4 = p.dim / 4u, base = row * n4;
    vec4 v[R], wv[R];
    [[unroll]] for (uint k = 0u; k < R; ++k) {
      const uint j = tid + k * WG;
      v[k] = vec4(0.0);
      wv[k] = vec4(0.0);
      if (j < n4) {
        v[k] = LOAD4(base + j);
        wv[k] = w4[j];
      }
    }
    [[unroll]] for (uint k = 0u; k < R; ++k) {
      s += dot(v[k], v[k]);
#if FKV_ADD
      if (tid + k * WG < n4) sum4[base + tid + k * WG] = v[k];
#endif
    }
    for (uint j = tid + R * WG; j < n4; j += WG) {  // rows past the registers
      const vec4 t = LOAD4(base + j);
#if FKV_ADD
      sum4[base + j] = t;
#endif
      s += dot(t, t);
    }
    const float scale = 1.0 / sqrt(row_sum(s) / float(p.dim) + p.eps);
    [[unroll]] for (uint k = 0u; k < R; ++k)
      if (tid + k * WG < n4) o4[base + tid + k * WG] = v[k] * scale * wv[k];
    for (uint j = tid + R * WG; j < n4; j += WG) o4[base + j] = READ_BACK4(base + j) * scale * w4[j];
  } else {
    // Odd dims: the same with float slots (4 R of them, so that a row fits as many values).
    const uint base = row * p.dim;
    float v[4u * R], wv[4u * R];
    [[unroll]] for (uint k = 0u; k < 4u * R; ++k) {
      const uint j = tid + k * WG;
      v[k] = 0.0;
      wv[k] = 0.0;
      if (j < p.dim) {
        v[k] = LOAD1(base + j);
        wv[k] = w[j];
      }
    }
    [[unroll]] for (uint k = 0u; k < 4u * R; ++k) {
      s += v[k] * v[k];
#if FKV_ADD
      if (tid + k * WG < p.dim) sum[base + tid + k * WG] = v[k];
#endif
    }
    for (uint j = tid + 4u * R * WG; j < p.dim; j += WG) {
      const float t = LOAD1(base + j);
#if FKV_ADD
      sum[base + j] = t;
#endif
      s += t * t;
    }
    const float scale = 1.0 / sqrt(row_sum(s) / float(p.dim) + p.eps);
    [[unroll]] for (uint k = 0u; k < 4u * R; ++k)
      if (tid + k * WG < p.dim) o[base + tid + k * WG] = v[k] * scale * wv[k];
    for (uint j = tid + 4u * R * WG; j < p.dim; j += WG) o[base + j] = READ_BACK1(base + j) * scale * w[j];
  }
}
