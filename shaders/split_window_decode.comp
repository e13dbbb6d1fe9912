#version 450
// Decode attention (one query) over a split KV cache's sink and window rows and the step's own row, when the
// middle is empty or taken by the decode middle pass (split_middle_fft.comp, split_middle_scores.comp +
// split_middle_values.comp): a lean stand-in for split_attention.comp, whose general tiles (staging, spectral
// sums, ~5 barriers per tile) took ~22 us a layer for a few hundred rows on an H100.
//
// Workgroup (chunk c, KV head g) takes rows c·CL .. c·CL + CL - 1 of the list sink (sink_len rows), window
// (win_len rows of the ring, oldest first), own row (k, v: fp32, rounded to the cache type like
// split_attention.comp's call rows) and writes the partials of g's G query heads in split_attention.comp's
// format (m, l, acc[D]; h, if the layout has it, is not written: split_merge_sum.comp reads h from the
// middle pass's chunks only). Invocation (row slot rs, word u) holds word u (VPT values, 16 bytes of the
// cache) of rows rs, rs + RPP, ...: every K and V word of the chunk is requested at once, so the workgroup
// waits on memory once. Per head, the word dots are summed over a row's TPR words in shared memory, the
// chunk's softmax runs in shared memory, and each invocation's weighted V words are summed over the RPP row
// slots in shared memory. The list's extent comes from the position register (the step's position), so that
// the command is the same at every position (a recorded step replays). No subgroup operation.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x = 128) in;
layout(constant_id = 0) const uint D = 128u;      // head_dim: a multiple of VPT, TPR a divisor of 128
layout(constant_id = 1) const uint G = 4u;        // query heads per KV head
layout(constant_id = 2) const bool KV_F16 = true;
layout(constant_id = 3) const uint CL = 32u;      // rows per workgroup, a multiple of RPP
layout(constant_id = 4) const uint PS = 130u;     // floats per partial (D + 2, + 2N with the middle's h)

layout(std430, binding = 0) readonly buffer Q { float q[]; };      // [heads, D]
layout(std430, binding = 1) readonly buffer OK { vec4 ok[]; };     // own row's K: [kv_heads, D] fp32
layout(std430, binding = 2) readonly buffer OV { vec4 ov[]; };
layout(std430, binding = 3) readonly buffer KS { uvec4 ks[]; };    // sink K rows, cache type
layout(std430, binding = 4) readonly buffer KW { uvec4 kw[]; };    // window ring K rows
layout(std430, binding = 5) readonly buffer VS { uvec4 vs[]; };
layout(std430, binding = 6) readonly buffer VW { uvec4 vw[]; };
layout(std430, binding = 7) writeonly buffer Partial { float part[]; };
layout(std430, binding = 8) readonly buffer Position { uint pos_reg; };  // the step's position

layout(push_constant) uniform Params {
  uint heads;
  uint kv_heads;
  float scale;
  uint chunks;     // chunk slots per query head in the partials
  uint window;     // W (may be 0)
  uint sink;       // S: ring row of position t is (t - S) % ring
  uint ring;       // max(W, 1)
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"
#include "common/split_window_body.glsl"

void main() { window_decode(gl_WorkGroupID.x, gl_WorkGroupID.y); }
