#version 450
// out[i, r] = sum_c W[r, c] * x[i, c] for many tokens (prefill) on GPUs: a workgroup computes a tile of
// 64 rows x 64 tokens. Per 32-value step, 64 threads decode one unit of the tile's rows into shared memory,
// all 256 load the tokens' 32 activations, and each thread accumulates a 4 x 4 block of outputs. Each weight
// is read once per 64 tokens instead of once per token group of matmul.comp.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;  // 256
layout(constant_id = 1) const uint WTYPE = 0u;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Params {
  uint rows;
  uint cols;
  uint n;
  uint w_base;
  uint x_base;
  uint out_base;
  uint out_stride;
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

const uint BM = 64u, BN = 64u, PAD = UNIT + 1u;  // one padding float per row: conflict-free column reads
shared float w_s[BM * PAD];
shared float x_s[BN * PAD];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r0 = linear_workgroup() * BM;
  const uint i0 = gl_WorkGroupID.y * BN;
  const uint tr = tid % 16u, tc = tid / 16u;
  const uint rb = row_bytes(p.cols);
  const uint units = units_per_row(p.cols);

  float acc[16];
  [[unroll]] for (uint k = 0u; k < 16u; ++k) acc[k] = 0.0;

  for (uint u = 0u; u < units; ++u) {
    const uint c0 = u * UNIT;
    if (tid < BM) {
      float v[32];
      if (r0 + tid < p.rows) {
        decode_unit(p.w_base + (r0 + tid) * rb, u, p.cols, v);
      } else {
        [[unroll]] for (uint j = 0u; j < UNIT; ++j) v[j] = 0.0;
      }
      [[unroll]] for (uint j = 0u; j < UNIT; ++j) w_s[tid * PAD + j] = v[j];
    }
    for (uint e = tid; e < BN * UNIT; e += gl_WorkGroupSize.x) {
      const uint t = e / UNIT, j = e % UNIT;
      x_s[t * PAD + j] = (i0 + t < p.n && c0 + j < p.cols) ? x[p.x_base + (i0 + t) * p.cols + c0 + j] : 0.0;
    }
    barrier();
    for (uint j = 0u; j < UNIT; ++j) {  // j indexes shared memory only: no need to unroll
      float a[4], b[4];
      [[unroll]] for (uint q = 0u; q < 4u; ++q) {
        a[q] = w_s[(tr + 16u * q) * PAD + j];
        b[q] = x_s[(tc + 16u * q) * PAD + j];
      }
      [[unroll]] for (uint q = 0u; q < 4u; ++q) {
        [[unroll]] for (uint s = 0u; s < 4u; ++s) acc[q * 4u + s] += a[q] * b[s];
      }
    }
    barrier();
  }

  [[unroll]] for (uint q = 0u; q < 4u; ++q) {
    [[unroll]] for (uint s = 0u; s < 4u; ++s) {
      const uint r = r0 + tr + 16u * q, i = i0 + tc + 16u * s;
      if (r < p.rows && i < p.n) o[p.out_base + i * p.out_stride + r] = acc[q * 4u + s];
    }
  }
}
