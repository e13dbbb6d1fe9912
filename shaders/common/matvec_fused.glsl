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
//   ROPE_STORE 1 (q, k and v of one token, SWIGLU 0; vulkan_backend.cpp folds the RoPE of q and K and the
//     store of K and V into the f16 cache into the q/k/v dispatch): R is even, so a workgroup holds whole
//     adjacent pairs (2i, 2i + 1); q's and k's pairs are rotated by the angle of the position register,
//     and k's and v's are also written as f16 words of the cache row at that position, with the
//     expressions of rope_kv_store.comp. One dispatch and one barrier fewer per layer.
//   ROPE_STORE 2: the same rotation of q's and k's pairs without the cache store (a split KV cache, whose
//     append stores K and V itself); bindings 9 and 10 are not touched.
//   NORM_SCALE 1 (the norm fold: x is an RMSNorm's output before its scale, written by
//     matvec_add_norm.comp): every row total is multiplied by the scale that accumulator slot p.norm_slot
//     gives (common/norm_sum.glsl) before anything else is done with it; W . (s x) = s (W . x).
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
layout(constant_id = 6) const uint ROPE_STORE = 0u;
layout(constant_id = 7) const uint NORM_SCALE = 0u;

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
// ROPE_STORE only (otherwise bound to anything and not touched):
layout(std430, binding = 7) readonly buffer Table { vec2 cs[]; };  // [positions, pairs] (cos, sin)
layout(std430, binding = 8) readonly buffer Position { uint pos0; };
layout(std430, binding = 9) writeonly buffer CacheK { uint cache_k[]; };
layout(std430, binding = 10) writeonly buffer CacheV { uint cache_v[]; };
// NORM_SCALE only: the norm fold's accumulator slots.
layout(std430, binding = 11) readonly buffer NormSum2 { uvec2 norm_sum2[]; };

layout(push_constant) uniform Params {
  uint cols;
  uint rows0, rows1, rows2;
  uint first1, first2;  // the first workgroup of targets 1 and 2 (SWIGLU 0)
  // ROPE_STORE (as rope_kv_store.comp's):
  uint pairs;         // per head
  uint table_base;    // cs index of position `origin`'s first pair in binding 7
  uint origin;
  uint k_base;        // word offset in binding 9 of cache row `cache_origin`
  uint v_base;        // word offset in binding 10 of cache row `cache_origin`
  uint cache_origin;
  // NORM_SCALE:
  uint norm_slot;
  float norm_eps;
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"
#include "common/half.glsl"
#define NORM_SUM2 norm_sum2
#include "common/norm_sum.glsl"

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
  // NORM_SCALE: the accumulator's words are loaded now and turned into the scale after the products.
  if (NORM_SCALE != 0u && tid < R) norm_sum_load(p.norm_slot);
  if (SWIGLU != 0u) {
    const uint row0 = g * H;
    float acc[R];
    [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] = 0.0;
    accumulate_gate_up(row0, p.rows0 - 1u, rbytes, slots, 0u, acc);
    [[unroll]] for (uint r = 0u; r < R; ++r) stash(r, acc[r]);
    reduce_rows();
    const float ns = NORM_SCALE != 0u && tid < R ? norm_sum_scale(p.cols, p.norm_eps) : 1.0;
    if (tid < H && row0 + tid < p.rows0) {
      const float gate = row_total(tid) * ns, up = row_total(H + tid) * ns;
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
  const float ns = NORM_SCALE != 0u && tid < R ? norm_sum_scale(p.cols, p.norm_eps) : 1.0;
  if (ROPE_STORE != 0u) {
    if (tid < R / 2u && row0 + 2u * tid < rows) {
      const uint e = row0 + 2u * tid, j = e / 2u;  // j: the pair's index in its tensor (one token)
      float a = row_total(2u * tid) * ns, b = row_total(2u * tid + 1u) * ns;
      if (t != 2u) {
        const vec2 c = cs[p.table_base + (pos0 - p.origin) * p.pairs + j % p.pairs];
        const float ra = a * c.x - b * c.y, rb = a * c.y + b * c.x;
        a = ra;
        b = rb;
      }
      const uint word = to_half(a) | (to_half(b) << 16);
      const uint cache_row = (pos0 - p.cache_origin) * (p.rows1 / 2u);  // words per cache row
      if (t == 0u) {
        o0[e] = a;
        o0[e + 1u] = b;
      } else if (t == 1u) {
        o1[e] = a;
        o1[e + 1u] = b;
        if (ROPE_STORE == 1u) cache_k[p.k_base + cache_row + j] = word;
      } else {
        o2[e] = a;
        o2[e + 1u] = b;
        if (ROPE_STORE == 1u) cache_v[p.v_base + cache_row + j] = word;
      }
    }
    return;
  }
  if (tid < R && row0 + tid < rows) {
    const float v = row_total(tid) * ns;
    if (t == 0u) {
      o0[row0 + tid] = v;
    } else if (t == 1u) {
      o1[row0 + tid] = v;
    } else {
      o2[row0 + tid] = v;
    }
  }
}
