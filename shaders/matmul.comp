#version 450
// out[i, r] = sum_c W[r, c] * x[i, c] for a chunk of rows and a chunk of tokens.
// TPR threads share a row (WG / TPR rows per workgroup): each walks every TPR-th 32-value unit of the row,
// decodes it once and dots it with NT tokens; the TPR partial sums are then added in shared memory (no
// subgroup size assumed). NT = 1 is the decode matvec; larger NT reuses each decoded unit for NT tokens.
// GPUs want TPR >= 16 so that a row's bytes are read by neighbouring threads; CPU implementations
// (lavapipe) run fastest with TPR = 1, a row per invocation and no barriers.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = 0u;
layout(constant_id = 2) const uint TPR = 32u;  // threads per row, a power of two dividing WG
layout(constant_id = 3) const uint NT = 1u;    // tokens per workgroup
layout(constant_id = 4) const uint WG = 128u;  // equals local_size_x
const uint ROWS = WG / TPR;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Params {
  uint rows;        // rows in this chunk
  uint cols;
  uint n;           // tokens in this chunk
  uint w_base;      // byte offset of the chunk's first row in binding 0
  uint x_base;      // float offset of the chunk's first token in binding 1
  uint out_base;    // float offset of out[first token, first row] in binding 2
  uint out_stride;  // floats between tokens in out (all rows of the matrix)
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

shared float red[NT * WG];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint lane = tid % TPR;
  const uint r = linear_workgroup() * ROWS + tid / TPR;
  const uint i0 = gl_WorkGroupID.y * NT;
  const uint units = units_per_row(p.cols);
  const uint nt = min(NT, p.n - i0);

  float acc[NT];
  [[unroll]] for (uint t = 0u; t < NT; ++t) acc[t] = 0.0;

  if (r < p.rows && TPR == 1u) {
    // One invocation per row: sum in exactly the CPU reference's order (cpu::dot: 8 interleaved partial
    // sums, combined pairwise, then the tail), without fused multiply-adds, so the result matches it bit
    // for bit where the driver honours `precise` (lavapipe does).
    const uint rb = p.w_base + r * row_bytes(p.cols);
    const uint full8 = p.cols / 8u * 8u;
    precise float a8[NT * 8u];
    precise float tail[NT];
    [[unroll]] for (uint k = 0u; k < NT * 8u; ++k) a8[k] = 0.0;
    [[unroll]] for (uint t = 0u; t < NT; ++t) tail[t] = 0.0;
    for (uint u = 0u; u < units; ++u) {
      float v[32];
      decode_unit(rb, u, p.cols, v);
      const uint c0 = u * UNIT;
      const uint xb = p.x_base + i0 * p.cols + c0;
      if (c0 + UNIT <= full8) {
        [[unroll]] for (uint t = 0u; t < NT; ++t) {
          if (t < nt) {
            [[unroll]] for (uint j = 0u; j < UNIT; ++j) a8[t * 8u + j % 8u] += v[j] * x[xb + t * p.cols + j];
          }
        }
      } else {
        for (uint t = 0u; t < nt; ++t) {
          for (uint j = 0u; j < UNIT && c0 + j < p.cols; ++j) {
            if (c0 + j < full8) {
              a8[t * 8u + j % 8u] += v[j] * x[xb + t * p.cols + j];
            } else {
              tail[t] += v[j] * x[xb + t * p.cols + j];
            }
          }
        }
      }
    }
    [[unroll]] for (uint t = 0u; t < NT; ++t) {
      if (t < nt) {
        const uint k = t * 8u;
        precise float total =
            ((a8[k] + a8[k + 4u]) + (a8[k + 1u] + a8[k + 5u])) + ((a8[k + 2u] + a8[k + 6u]) + (a8[k + 3u] + a8[k + 7u])) +
            tail[t];
        o[p.out_base + (i0 + t) * p.out_stride + r] = total;
      }
    }
    return;
  }

  if (r < p.rows) {
    const uint rb = p.w_base + r * row_bytes(p.cols);
    for (uint u = lane; u < units; u += TPR) {
      float v[32];
      decode_unit(rb, u, p.cols, v);
      const uint c0 = u * UNIT;
      const uint xb = p.x_base + i0 * p.cols + c0;
      if (c0 + UNIT <= p.cols) {
        [[unroll]] for (uint t = 0u; t < NT; ++t) {
          if (t < nt) {
            float s = 0.0;
            [[unroll]] for (uint j = 0u; j < UNIT; ++j) s += v[j] * x[xb + t * p.cols + j];
            acc[t] += s;
          }
        }
      } else {
        const uint len = p.cols - c0;
        for (uint t = 0u; t < nt; ++t) {
          float s = 0.0;
          for (uint j = 0u; j < len; ++j) s += v[j] * x[xb + t * p.cols + j];
          acc[t] += s;
        }
      }
    }
  }

  if (TPR > 1u) {
    [[unroll]] for (uint t = 0u; t < NT; ++t) red[t * WG + tid] = acc[t];
    barrier();
    for (uint s = TPR / 2u; s > 0u; s >>= 1) {
      if (lane < s) {
        [[unroll]] for (uint t = 0u; t < NT; ++t) red[t * WG + tid] += red[t * WG + tid + s];
      }
      barrier();
    }
    [[unroll]] for (uint t = 0u; t < NT; ++t) acc[t] = red[t * WG + tid];
  }
  if (lane == 0u && r < p.rows) {
    [[unroll]] for (uint t = 0u; t < NT; ++t) {
      if (t < nt) o[p.out_base + (i0 + t) * p.out_stride + r] = acc[t];
    }
  }
}
