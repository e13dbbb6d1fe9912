#version 450
// Split KV cache append, the positions that leave the window (pos_first .., `count` of them, oldest first)
// enter the middle at m = pos - sink. Their values are what the cache held: from the window ring when the
// position was stored before this chunk, else from the chunk rounded to the cache type.
//  mode 0: kept dims into `kept` rows (cache type; V's row after row, where f16 words may straddle rows, so
//          an invocation writes a whole word and keeps the half that belongs to another row; K's by columns,
//          common/kept_k_layout.glsl, a word an invocation);
//  mode 1: compressed dims (fp32) into `comp` [count, n_comp] and, for m < fit, into `pending` row m;
//  mode 2: decode after the fit (count 1, no refit at this row): mode 0's kept words, then one invocation per
//          (compressed dim c, frequency f) adds the value's projection to coef (fourier_accumulate's
//          arithmetic) and, for f = 0, the running sum/min/max: one dispatch instead of four.
// Positions come from the position register (the chunk's first position) plus first_rel, so that a decode
// step's command is the same at every position (a recorded step replays); the host sizes mode 2's grid for
// the most kept words a row can take.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool KV_F16 = true;
layout(constant_id = 2) const bool COLUMNS = false;  // the kept rows are K's, stored by columns

layout(std430, binding = 0) readonly buffer Window { uint win[]; };
layout(std430, binding = 1) readonly buffer Chunk { float chunk[]; };
layout(std430, binding = 2) readonly buffer Dims { int dims[]; };  // split_kv_layer.h dims_table
layout(std430, binding = 3) buffer Kept { uint kept[]; };
layout(std430, binding = 4) writeonly buffer Comp { float comp[]; };
layout(std430, binding = 5) writeonly buffer Pending { float pending[]; };
layout(std430, binding = 6) buffer Coef { float coef[]; };          // mode 2: [n_comp, 2N]
layout(std430, binding = 7) buffer Norm { float norm[]; };          // mode 2: [n_comp, 8]
layout(std430, binding = 8) readonly buffer Table { vec2 basis[]; };  // mode 2: cos, sin of 2π k / T
layout(std430, binding = 9) readonly buffer Position { uint pos_reg; };  // the chunk's first position

layout(push_constant) uniform Params {
  uint count;
  uint first_rel;  // the first position leaving the window, minus the chunk's first (two's complement)
  uint sink;
  uint ring;      // W
  uint n_kv;
  uint head_dim;
  uint n_keep;
  uint n_comp;
  uint fit;
  uint mode;
  uint period;  // T
  uint n_freq;  // N
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"

uint pos0 = 0u;       // the chunk's first position (the register): earlier positions are in the ring
uint pos_first = 0u;  // the first position leaving the window

#define SKE_WIN win
#define SKE_CHUNK chunk
#define SKE_DIMS dims
#define SKE_KEPT kept
#define SKE_COEF coef
#define SKE_NORM norm
#define SKE_CACHE_VALUE cache_value
#define SKE_ELEMENT element
#define SKE_KEPT_VALUE kept_value
#define SKE_STORE_KEPT store_kept
#define SKE_STORE_KEPT_WORD store_kept_word
#define SKE_COLUMNS COLUMNS
#define SKE_DECODE_ITEM decode_item
#include "common/split_kv_enter.glsl"

void main() {
  const uint stride = linear_workgroup_count() * gl_WorkGroupSize.x;
  const uint first = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  pos0 = pos_reg;
  pos_first = pos_reg + p.first_rel;
  const uint m0 = pos_first - p.sink;
  if (p.mode == 2u) {
    const uint total = split_kv_decode_items(m0, p.n_keep, p.n_comp, COLUMNS);
    for (uint g = first; g < total; g += stride) decode_item(g, m0, p.n_keep, p.n_comp);
    return;
  }
  if (p.mode == 0u && COLUMNS) {
    const uint words = kept_k_row_words(p.n_keep, KV_F16), total = p.count * words;
    for (uint u = first; u < total; u += stride)
      store_kept_word(m0 + u / words, u % words, p.n_keep, p.n_comp);
    return;
  }
  if (p.mode == 0u) {
    const uint e0 = m0 * p.n_keep, e1 = (m0 + p.count) * p.n_keep;
    const uint u0 = KV_F16 ? e0 / 2u : e0, u1 = KV_F16 ? (e1 + 1u) / 2u : e1;
    for (uint u = u0 + first; u < u1; u += stride) store_kept(u, e0, e1, p.n_keep, p.n_comp);
    return;
  }
  const uint total = p.count * p.n_comp;
  for (uint e = first; e < total; e += stride) {
    const uint r = e / p.n_comp, j = e % p.n_comp;
    const float x = cache_value(pos_first + r, element(1u, j, p.n_keep, p.n_comp));
    comp[e] = x;
    if (m0 + r < p.fit) pending[(m0 + r) * p.n_comp + j] = x;
  }
}
