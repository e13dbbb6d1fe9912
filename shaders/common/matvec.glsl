// The decode matrix-vector product on GPUs: out[r] = sum_c W[r, c] * x[c] for one token
// (common/matvec_ops.glsl has the shape of the work). Included by matvec.comp (partial sums added in shared
// memory) and matvec_subgroup.comp (subgroupAdd, for devices with subgroup arithmetic in compute); the
// including file defines FKV_SUBGROUP_ADD to 0 or 1.
// The host uses this shader for F16 (cols % 8 == 0, 16-byte aligned rows), Q4_0 (either layout), Q4_1 and
// Q8_0 when x starts 16-byte aligned; everything else goes to matmul.comp. matvec_fused.glsl runs two or
// three of these products of one x as one dispatch.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FKV_SUBGROUP_ADD
#extension GL_KHR_shader_subgroup_arithmetic : require
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

// The layout of matmul.comp's push constants (n is always 1 here, out_stride unused).
layout(push_constant) uniform Params {
  uint rows;
  uint cols;
  uint n;
  uint w_base;  // byte offset of the first row in binding 0
  uint x_base;  // float offset of x in binding 1, a multiple of 4
  uint out_base;
  uint out_stride;
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
  accumulate(row0, p.rows - 1u, row_bytes(p.cols), p.cols / 8u, p.x_base / 4u, acc);
  [[unroll]] for (uint r = 0u; r < R; ++r) stash(r, acc[r]);
  reduce_rows();
  if (tid < R && row0 + tid < p.rows) o[p.out_base + row0 + tid] = row_total(tid);
}
