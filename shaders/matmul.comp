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
layout(constant_id = 5) const uint RPT = 1u;   // rows per thread group, decode (NT = 1) only
const uint ROWS = WG / TPR * RPT;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 0) readonly buffer Weights4 { uvec4 w4[]; };  // the same words, 16 bytes at a time
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
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

shared float red[NT * RPT * WG];

// Every array below is indexed with compile-time constants only (unrolled loops, guards inside), so that
// GPU compilers keep it in registers: one run-time index would move it to (slow) local memory.

// sum_j v[j] * x[xb + j] over a full unit; vec4 loads when x rows are 16-byte aligned.
float unit_dot(const float v[32], uint xb, bool vec4_ok) {
  float s = 0.0;
  if (vec4_ok) {
    const uint b4 = xb >> 2;
    [[unroll]] for (uint k = 0u; k < 8u; ++k)
      s += dot(vec4(v[4u * k], v[4u * k + 1u], v[4u * k + 2u], v[4u * k + 3u]), x4[b4 + k]);
  } else {
    [[unroll]] for (uint j = 0u; j < UNIT; ++j) s += v[j] * x[xb + j];
  }
  return s;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint lane = tid % TPR;
  const uint r = linear_workgroup() * ROWS + (tid / TPR) * RPT;  // first of this thread's RPT rows
  const uint i0 = gl_WorkGroupID.y * NT;
  const uint units = units_per_row(p.cols);
  const uint nt = min(NT, p.n - i0);
  const uint rb = p.w_base + r * row_bytes(p.cols);

  if (TPR == 1u) {
    if (r >= p.rows) return;
    // One invocation per row: sum in the CPU reference's order (cpu::dot: 8 interleaved partial sums,
    // combined pairwise, then the tail), without fused multiply-adds (`precise`).
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
      [[unroll]] for (uint t = 0u; t < NT; ++t) {
        if (t < nt) {
          if (c0 + UNIT <= full8) {
            [[unroll]] for (uint j = 0u; j < UNIT; ++j) a8[t * 8u + j % 8u] += v[j] * x[xb + t * p.cols + j];
          } else {
            [[unroll]] for (uint j = 0u; j < UNIT; ++j) {
              if (c0 + j < full8) {
                a8[t * 8u + j % 8u] += v[j] * x[xb + t * p.cols + j];
              } else if (c0 + j < p.cols) {
                tail[t] += v[j] * x[xb + t * p.cols + j];
              }
            }
          }
        }
      }
    }
    [[unroll]] for (uint t = 0u; t < NT; ++t) {
      if (t < nt) {
        const uint k = t * 8u;
        precise float total = ((a8[k] + a8[k + 4u]) + (a8[k + 1u] + a8[k + 5u])) +
                              ((a8[k + 2u] + a8[k + 6u]) + (a8[k + 3u] + a8[k + 7u])) + tail[t];
        o[p.out_base + (i0 + t) * p.out_stride + r] = total;
      }
    }
    return;
  }

  if (NT == 1u && RPT > 1u) {
    // Decode with RPT rows per thread: each 32-value unit of activations is loaded once into registers and
    // dotted with the same unit of RPT rows; activation traffic would otherwise dominate for 4-bit weights
    // (128 bytes of activations per 18-byte Q4_0 block).
    float accr[RPT];
    [[unroll]] for (uint k = 0u; k < RPT; ++k) accr[k] = 0.0;
    const bool vec4_ok = (p.cols % 4u) == 0u && (p.x_base % 4u) == 0u;
    const uint rbytes = row_bytes(p.cols);
    for (uint u = lane; u < units; u += TPR) {
      const uint c0 = u * UNIT;
      const uint xb = p.x_base + i0 * p.cols + c0;
      vec4 xv[8];
      if (vec4_ok && c0 + UNIT <= p.cols) {
        [[unroll]] for (uint k = 0u; k < 8u; ++k) xv[k] = x4[(xb >> 2) + k];
      } else {
        [[unroll]] for (uint k = 0u; k < 8u; ++k) {
          [[unroll]] for (uint j = 0u; j < 4u; ++j) xv[k][j] = c0 + 4u * k + j < p.cols ? x[xb + 4u * k + j] : 0.0;
        }
      }
      [[unroll]] for (uint k = 0u; k < RPT; ++k) {
        if (r + k < p.rows) {
          float v[32];
          decode_unit(rb + k * rbytes, u, p.cols, v);  // values past cols decode as 0 (float types)
          float sum = 0.0;
          [[unroll]] for (uint q = 0u; q < 8u; ++q)
            sum += dot(vec4(v[4u * q], v[4u * q + 1u], v[4u * q + 2u], v[4u * q + 3u]), xv[q]);
          accr[k] += sum;
        }
      }
    }
    [[unroll]] for (uint k = 0u; k < RPT; ++k) red[k * WG + tid] = accr[k];
    barrier();
    for (uint s = TPR / 2u; s > 0u; s >>= 1) {
      if (lane < s) {
        [[unroll]] for (uint k = 0u; k < RPT; ++k) red[k * WG + tid] += red[k * WG + tid + s];
      }
      barrier();
    }
    if (lane == 0u) {
      [[unroll]] for (uint k = 0u; k < RPT; ++k) {
        if (r + k < p.rows) o[p.out_base + i0 * p.out_stride + r + k] = red[k * WG + tid];
      }
    }
    return;
  }

  float acc[NT];
  [[unroll]] for (uint t = 0u; t < NT; ++t) acc[t] = 0.0;
  if (r < p.rows) {
    const bool vec4_ok = (p.cols % 4u) == 0u && (p.x_base % 4u) == 0u;
    if (WTYPE == T_F16 && (p.cols % 8u) == 0u && (rb % 16u) == 0u && vec4_ok) {
      // F16 rows as 16-byte vectors: neighbouring threads read neighbouring 16 bytes.
      const uint base4 = rb / 16u, q4 = p.cols / 8u;
      for (uint q = lane; q < q4; q += TPR) {
        const uvec4 h = w4[base4 + q];
        const vec4 lo = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
        const vec4 hi = vec4(unpackHalf2x16(h.z), unpackHalf2x16(h.w));
        [[unroll]] for (uint t = 0u; t < NT; ++t) {
          if (t < nt) {
            const uint xb4 = (p.x_base + (i0 + t) * p.cols) / 4u + 2u * q;
            acc[t] += dot(lo, x4[xb4]) + dot(hi, x4[xb4 + 1u]);
          }
        }
      }
    } else {
      for (uint u = lane; u < units; u += TPR) {
        float v[32];
        decode_unit(rb, u, p.cols, v);
        const uint c0 = u * UNIT;
        const uint xb = p.x_base + i0 * p.cols + c0;
        [[unroll]] for (uint t = 0u; t < NT; ++t) {
          if (t < nt) {
            if (c0 + UNIT <= p.cols) {
              acc[t] += unit_dot(v, xb + t * p.cols, vec4_ok);
            } else {
              float s = 0.0;
              [[unroll]] for (uint j = 0u; j < UNIT; ++j) {
                if (c0 + j < p.cols) s += v[j] * x[xb + t * p.cols + j];
              }
              acc[t] += s;
            }
          }
        }
      }
    }
  }

  [[unroll]] for (uint t = 0u; t < NT; ++t) red[t * WG + tid] = acc[t];
  barrier();
  for (uint s = TPR / 2u; s > 0u; s >>= 1) {
    if (lane < s) {
      [[unroll]] for (uint t = 0u; t < NT; ++t) red[t * WG + tid] += red[t * WG + tid + s];
    }
    barrier();
  }
  if (lane == 0u && r < p.rows) {
    [[unroll]] for (uint t = 0u; t < NT; ++t) {
      if (t < nt) o[p.out_base + (i0 + t) * p.out_stride + r] = red[t * WG + tid];
    }
  }
}
