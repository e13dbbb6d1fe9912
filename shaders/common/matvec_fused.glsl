// Two or three decode matrix-vector products of one token's x in one dispatch (the q, k and v projections;
// gate and up), each matrix in a binding of its own: a dispatch costs the GPU a few microseconds of
// ramp-up and tail, which is most of the time of a small product (k, v). Included by matvec_fused.comp
// and matvec_fused_subgroup.comp (FKV_SUBGROUP_ADD 0 or 1). Every matrix has the type, the layout and the
// row length of the first; each is bound whole from offset 0, as are x and the outputs.
//   SWIGLU 0: target t's rows are those of workgroups [first_t, first_{t+1}) (first_0 = 0), R rows per
//     workgroup, computed exactly as matvec.glsl computes them; out_t[r] = W_t[r, :] . x.
//   SWIGLU 1 (gate and up followed by SwiGLU into gate's output): a workgroup computes the same R / 2 rows
//     of W_0 (gate) and of W_1 (up), loading each slot's activations once for the R rows, so that a thread
//     has as many loads in flight and registers as in matvec.glsl; out_0[r] = silu(g) * u as
//     elementwise.comp computes it, out_1[r] = u (what up's product would have left there).
// The per-row arithmetic (slot order, reduction) is the same as matvec.glsl's, so results agree with the
// separate dispatches.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FKV_SUBGROUP_ADD
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = 1u;
layout(constant_id = 2) const uint WG = 128u;  // equals local_size_x; a power of two
layout(constant_id = 3) const uint R = 2u;     // rows per workgroup (SWIGLU: R / 2 of each matrix)
layout(constant_id = 4) const uint U = 4u;     // slots per thread loaded together
layout(constant_id = 5) const uint SWIGLU = 0u;

// Each matrix's words, also as 16 bytes at a time; `w` is the first (common/dequant.glsl reads `w`).
layout(std430, binding = 0) readonly buffer Weights0 { uint w[]; };
layout(std430, binding = 0) readonly buffer Weights0v { uvec4 w0v[]; };
layout(std430, binding = 1) readonly buffer Weights1 { uint w1[]; };
layout(std430, binding = 1) readonly buffer Weights1v { uvec4 w1v[]; };
layout(std430, binding = 2) readonly buffer Weights2 { uint w2[]; };
layout(std430, binding = 2) readonly buffer Weights2v { uvec4 w2v[]; };
layout(std430, binding = 3) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 4) writeonly buffer Out0 { float o0[]; };
layout(std430, binding = 5) writeonly buffer Out1 { float o1[]; };
layout(std430, binding = 6) writeonly buffer Out2 { float o2[]; };

layout(push_constant) uniform Params {
  uint cols;
  uint rows0, rows1, rows2;
  uint first1, first2;  // the first workgroup of targets 1 and 2 (SWIGLU 0)
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

#define MV_RED_ROWS R
#include "common/matvec_ops.glsl"

#define MV_W w
#define MV_W4 w0v
#define MV_LOAD_SLOT load_slot0
#include "common/matvec_slot.glsl"
#define MV_W w1
#define MV_W4 w1v
#define MV_LOAD_SLOT load_slot1
#include "common/matvec_slot.glsl"
#define MV_W w2
#define MV_W4 w2v
#define MV_LOAD_SLOT load_slot2
#include "common/matvec_slot.glsl"

// One loop per matrix, so that each reads its binding directly (the target is known per workgroup).
#define MV_ACCUMULATE accumulate0
#define MV_NR R
#define MV_ROW_SLOT(r, s) load_slot0(min(row0 + (r), last) * rbytes, s)
#include "common/matvec_loop.glsl"
#define MV_ACCUMULATE accumulate1
#define MV_NR R
#define MV_ROW_SLOT(r, s) load_slot1(min(row0 + (r), last) * rbytes, s)
#include "common/matvec_loop.glsl"
#define MV_ACCUMULATE accumulate2
#define MV_NR R
#define MV_ROW_SLOT(r, s) load_slot2(min(row0 + (r), last) * rbytes, s)
#include "common/matvec_loop.glsl"
// SWIGLU: accumulated rows 0..H-1 are gate's, H..R-1 up's, of the same matrix rows.
const uint H = R / 2u;
#define MV_ACCUMULATE accumulate_gate_up
#define MV_NR R
#define MV_ROW_SLOT(r, s) \
  ((r) < H ? load_slot0(min(row0 + (r), last) * rbytes, s) : load_slot1(min(row0 + (r) - H, last) * rbytes, s))
#include "common/matvec_loop.glsl"

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint g = linear_workgroup();
  const uint slots = p.cols / 8u, rbytes = row_bytes(p.cols);
  if (SWIGLU != 0u) {
    const uint row0 = g * H;
    float acc[R];
    [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] = 0.0;
    accumulate_gate_up(row0, p.rows0 - 1u, rbytes, slots, 0u, acc);
    [[unroll]] for (uint r = 0u; r < R; ++r) stash(r, acc[r]);
    reduce_rows();
    if (tid < H && row0 + tid < p.rows0) {
      const float gate = row_total(tid), up = row_total(H + tid);
      o1[row0 + tid] = up;
      o0[row0 + tid] = gate / (1.0 + exp(-gate)) * up;
    }
    return;
  }
  const uint t = g >= p.first2 ? 2u : g >= p.first1 ? 1u : 0u;
  const uint row0 = (g - (t == 2u ? p.first2 : t == 1u ? p.first1 : 0u)) * R;
  const uint rows = t == 2u ? p.rows2 : t == 1u ? p.rows1 : p.rows0;
  float acc[R];
  [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] = 0.0;
  if (t == 0u) {
    accumulate0(row0, rows - 1u, rbytes, slots, 0u, acc);
  } else if (t == 1u) {
    accumulate1(row0, rows - 1u, rbytes, slots, 0u, acc);
  } else {
    accumulate2(row0, rows - 1u, rbytes, slots, 0u, acc);
  }
  [[unroll]] for (uint r = 0u; r < R; ++r) stash(r, acc[r]);
  reduce_rows();
  if (tid < R && row0 + tid < rows) {
    const float v = row_total(tid);
    if (t == 0u) {
      o0[row0 + tid] = v;
    } else if (t == 1u) {
      o1[row0 + tid] = v;
    } else {
      o2[row0 + tid] = v;
    }
  }
}
