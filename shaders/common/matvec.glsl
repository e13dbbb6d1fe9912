// The decode matrix-vector product on GPUs: out[r] = sum_c W[r, c] * x[c] for one token
// (common/matvec_ops.glsl has the shape of the work). Included by matvec.comp (partial sums added in shared
// memory) and matvec_subgroup.comp (subgroupAdd, for devices with subgroup arithmetic in compute); the
// including file defines FKV_SUBGROUP_ADD to 0 or 1.
// The host uses this shader for F16 (cols % 8 == 0, 16-byte aligned rows), Q4_0 (either layout), Q4_1 and
// Q8_0 when x starts 16-byte aligned; everything else goes to matmul.comp. matvec_fused.glsl runs two or
// three of these products of one x as one dispatch. FKV_ADD_NORM 1 (matvec_add_norm.comp) also does the
// residual add after the product and the first half of the RMSNorm that follows it.
#ifndef FKV_ADD_NORM
#define FKV_ADD_NORM 0
#endif
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FKV_SUBGROUP_ADD
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#if FKV_ADD_NORM
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_EXT_shader_atomic_int64 : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = 1u;
layout(constant_id = 2) const uint WG = 128u;  // equals local_size_x; a power of two
layout(constant_id = 3) const uint R = 2u;     // rows per workgroup
layout(constant_id = 4) const uint U = 4u;     // slots per thread loaded together

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 0) readonly buffer Weights4 { uvec4 w4[]; };  // the same words, 16 bytes at a time
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };
#if FKV_ADD_NORM
// The norm fold (matvec_add_norm.comp): the product is the residual stream's update, and the output is the
// next RMSNorm's input before its scale. Row r: h = res[r] + W[r, :] . x is written back to res[r],
// o[r] = h * norm_w[r], and h^2 is added to the sum of squares in accumulator slot p.norm_slot
// (common/norm_sum.glsl), which the readers of o turn into the scale.
layout(std430, binding = 3) buffer Residual { float res[]; };
layout(std430, binding = 4) readonly buffer NormWeight { float norm_w[]; };
layout(std430, binding = 5) buffer NormSum { uint64_t norm_sum[]; };
#define NORM_SUM norm_sum
#define FKV_NORM_SUM_ADD 1
#include "common/norm_sum.glsl"
shared float squares[R];
#endif

// The layout of matmul.comp's push constants (n is always 1 here, out_stride unused), and the norm fold's
// slot.
layout(push_constant) uniform Params {
  uint rows;
  uint cols;
  uint n;
  uint w_base;  // byte offset of the first row in binding 0
  uint x_base;  // float offset of x in binding 1, a multiple of 4
  uint out_base;
  uint out_stride;
  uint norm_slot;
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

#define MV_RED_ROWS R
#include "common/matvec_ops.glsl"

#define MV_W w
#define MV_W4 w4
#define MV_LOAD_SLOT load_slot
#include "common/matvec_slot.glsl"

#define MV_ACCUMULATE accumulate
#define MV_NR R
#define MV_ROW_SLOT(r, s) load_slot(p.w_base + min(row0 + (r), last) * rbytes, s)
#include "common/matvec_loop.glsl"

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row0 = linear_workgroup() * R;
  float acc[R];
  [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] = 0.0;
  // F16: cols % 8 == 0; quantized: 4 slots per 32-value block.
#if FKV_ADD_NORM
  // The residual and the norm weight of the invocation's row, loaded before the product (used after it).
  float res_v = 0.0, nw_v = 0.0;
  if (tid < R && row0 + tid < p.rows) {
    res_v = res[row0 + tid];
    nw_v = norm_w[row0 + tid];
  }
#endif
  accumulate(row0, p.rows - 1u, row_bytes(p.cols), p.cols / 8u, p.x_base / 4u, acc);
  [[unroll]] for (uint r = 0u; r < R; ++r) stash(r, acc[r]);
  reduce_rows();
#if FKV_ADD_NORM
  // Invocation r < R writes row r's sum and normed value; the rows' squares are added in shared memory and
  // sent as one part.
  float sq = 0.0;
  if (tid < R && row0 + tid < p.rows) {
    const float h = res_v + row_total(tid);
    res[row0 + tid] = h;
    o[p.out_base + row0 + tid] = h * nw_v;
    sq = h * h;
  }
  if (tid < R) squares[tid] = sq;
  barrier();
  if (tid == 0u) {
    float part = 0.0;
    [[unroll]] for (uint r = 0u; r < R; ++r) part += squares[r];
    norm_sum_add(p.norm_slot, part);
  }
#else
  if (tid < R && row0 + tid < p.rows) o[p.out_base + row0 + tid] = row_total(tid);
#endif
}
