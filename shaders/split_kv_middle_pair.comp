#version 450
// split_kv_middle.comp's decode entry (mode 2: count 1, after the fit, no refit at this row) for K and V in
// one dispatch: invocations [0, K's items) do K's (its kept words, then one per compressed dim and
// frequency), the rest V's. One dispatch a layer instead of two beside the gate/up matvec
// (docs/VULKAN.md "Where a split cache's append runs").
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool KV_F16 = true;

layout(std430, binding = 0) readonly buffer WinK { uint win_k[]; };
layout(std430, binding = 1) readonly buffer ChunkK { float chunk_k[]; };
layout(std430, binding = 2) readonly buffer DimsK { int dims_k[]; };  // split_kv_layer.h dims_table
layout(std430, binding = 3) buffer KeptK { uint kept_k[]; };
layout(std430, binding = 4) buffer CoefK { float coef_k[]; };  // [n_comp, 2N]
layout(std430, binding = 5) buffer NormK { float norm_k[]; };  // [n_comp, 8]
layout(std430, binding = 6) readonly buffer WinV { uint win_v[]; };
layout(std430, binding = 7) readonly buffer ChunkV { float chunk_v[]; };
layout(std430, binding = 8) readonly buffer DimsV { int dims_v[]; };
layout(std430, binding = 9) buffer KeptV { uint kept_v[]; };
layout(std430, binding = 10) buffer CoefV { float coef_v[]; };
layout(std430, binding = 11) buffer NormV { float norm_v[]; };
layout(std430, binding = 12) readonly buffer Table { vec2 basis[]; };     // cos, sin of 2π k / T
layout(std430, binding = 13) readonly buffer Position { uint pos_reg; };  // the chunk's first position

layout(push_constant) uniform Params {
  uint first_rel;  // the position leaving the window, minus the chunk's first (two's complement)
  uint sink;
  uint ring;  // W
  uint n_kv;
  uint head_dim;
  uint n_keep_k;
  uint n_comp_k;
  uint n_keep_v;
  uint n_comp_v;
  uint period;
  uint n_freq;
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"

uint pos0 = 0u;       // the chunk's first position (the register): earlier positions are in the ring
uint pos_first = 0u;  // the position leaving the window

#define SKE_WIN win_k
#define SKE_CHUNK chunk_k
#define SKE_DIMS dims_k
#define SKE_KEPT kept_k
#define SKE_COEF coef_k
#define SKE_NORM norm_k
#define SKE_CACHE_VALUE cache_value_k
#define SKE_ELEMENT element_k
#define SKE_KEPT_VALUE kept_value_k
#define SKE_STORE_KEPT store_kept_k
#define SKE_STORE_KEPT_WORD store_kept_word_k
#define SKE_COLUMNS true
#define SKE_DECODE_ITEM decode_item_k
#include "common/split_kv_enter.glsl"

#define SKE_WIN win_v
#define SKE_CHUNK chunk_v
#define SKE_DIMS dims_v
#define SKE_KEPT kept_v
#define SKE_COEF coef_v
#define SKE_NORM norm_v
#define SKE_CACHE_VALUE cache_value_v
#define SKE_ELEMENT element_v
#define SKE_KEPT_VALUE kept_value_v
#define SKE_STORE_KEPT store_kept_v
#define SKE_STORE_KEPT_WORD store_kept_word_v
#define SKE_COLUMNS false
#define SKE_DECODE_ITEM decode_item_v
#include "common/split_kv_enter.glsl"

void main() {
  const uint stride = linear_workgroup_count() * gl_WorkGroupSize.x;
  pos0 = pos_reg;
  pos_first = pos_reg + p.first_rel;
  const uint m0 = pos_first - p.sink;
  const uint items_k = split_kv_decode_items(m0, p.n_keep_k, p.n_comp_k, true);
  const uint total = items_k + split_kv_decode_items(m0, p.n_keep_v, p.n_comp_v, false);
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < total; g += stride) {
    if (g < items_k)
      decode_item_k(g, m0, p.n_keep_k, p.n_comp_k);
    else
      decode_item_v(g - items_k, m0, p.n_keep_v, p.n_comp_v);
  }
}
