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

const uint WG = 128u;
const uint VPT = KV_F16 ? 8u : 4u;  // values per 16-byte word
const uint TPR = D / VPT;           // words (invocations) per row
const uint RPP = WG / TPR;          // row slots
const uint RPI = CL / RPP;          // rows per invocation
const uint RED = CL * TPR > RPP * D ? CL * TPR : RPP * D;

shared float q_s[G * D];
shared float red[RED];
shared float p_s[G * CL];  // per head: scores, then probabilities
shared float m_s[G], l_s[G];

// The list's extent at the step's position t (SplitKvLayer's sink_len, window_begin and the window rows).
uint sink_len = 0u, win_len = 0u, win_begin = 0u;
void list_extent() {
  const int t = int(pos_reg);
  sink_len = uint(min(int(p.sink), t));
  win_begin = uint(max(int(p.sink), t - int(p.window)));
  win_len = uint(max(0, t - int(win_begin)));
}

// Word u of KV head g in list row j (zeros past the list): values in a (and b for f16's second four).
void load_word(uint j, uint g, uint u, bool is_k, out vec4 a, out vec4 b) {
  a = vec4(0.0);
  b = vec4(0.0);
  const uint total = sink_len + win_len + 1u;
  if (j >= total) return;
  if (j == total - 1u) {  // the own row
    const uint o = (g * D + VPT * u) / 4u;
    a = is_k ? ok[o] : ov[o];
    if (KV_F16) {
      a = f16_round4(a);
      b = f16_round4(is_k ? ok[o + 1u] : ov[o + 1u]);
    }
    return;
  }
  const bool in_sink = j < sink_len;
  const uint row = in_sink ? j : (win_begin + (j - sink_len) - p.sink) % p.ring;
  const uint o = (row * p.kv_heads * D + g * D) / VPT + u;
  const uvec4 w = in_sink ? (is_k ? ks[o] : vs[o]) : (is_k ? kw[o] : vw[o]);
  if (KV_F16) {
    a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    b = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
  } else {
    a = uintBitsToFloat(w);
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint c = gl_WorkGroupID.x, g = gl_WorkGroupID.y, head0 = g * G;
  const uint u = tid % TPR, rs = tid / TPR;
  list_extent();
  const uint total = sink_len + win_len + 1u;

  for (uint x = tid; x < G * D; x += WG) q_s[x] = q[head0 * D + x] * p.scale;
  vec4 ka[RPI], kb[RPI], va[RPI], vb[RPI];
  [[unroll]] for (uint k = 0u; k < RPI; ++k) {
    const uint j = c * CL + rs + k * RPP;
    load_word(j, g, u, true, ka[k], kb[k]);
    load_word(j, g, u, false, va[k], vb[k]);
  }
  barrier();  // q_s

  // Scores, head by head: the TPR word dots of a row summed in red ([row][word]).
  for (uint h = 0u; h < G; ++h) {
    const uint qo = h * D + VPT * u;
    const vec4 qa = vec4(q_s[qo], q_s[qo + 1u], q_s[qo + 2u], q_s[qo + 3u]);
    vec4 qb = vec4(0.0);
    if (KV_F16) qb = vec4(q_s[qo + 4u], q_s[qo + 5u], q_s[qo + 6u], q_s[qo + 7u]);
    [[unroll]] for (uint k = 0u; k < RPI; ++k)
      red[(rs + k * RPP) * TPR + u] = dot(ka[k], qa) + (KV_F16 ? dot(kb[k], qb) : 0.0);
    barrier();
    for (uint r = tid; r < CL; r += WG) {
      float s = 0.0;
      for (uint e = 0u; e < TPR; ++e) s += red[r * TPR + e];
      p_s[h * CL + r] = c * CL + r < total ? s : kNegBig;
    }
    barrier();  // red is rewritten by the next head
  }

  // Softmax of the chunk's rows per head: max, probabilities in place, sum.
  if (tid < G) {
    float mx = kNegBig;
    for (uint r = 0u; r < CL; ++r) mx = max(mx, p_s[tid * CL + r]);
    m_s[tid] = mx;
  }
  barrier();
  for (uint x = tid; x < G * CL; x += WG) {
    const float s = p_s[x];
    p_s[x] = s > 0.5 * kNegBig ? exp(s - m_s[x / CL]) : 0.0;
  }
  barrier();
  if (tid < G) {
    float l = 0.0;
    for (uint r = 0u; r < CL; ++r) l += p_s[tid * CL + r];
    l_s[tid] = l;
    const uint base = ((head0 + tid) * p.chunks + c) * PS;
    part[base] = m_s[tid];
    part[base + 1u] = l;
  }

  // Σ P·v, head by head: each invocation weighs its words of its rows, the row slots are summed in red
  // ([slot][dim]).
  for (uint h = 0u; h < G; ++h) {
    vec4 sa = vec4(0.0), sb = vec4(0.0);
    [[unroll]] for (uint k = 0u; k < RPI; ++k) {
      const float w = p_s[h * CL + rs + k * RPP];
      sa += w * va[k];
      if (KV_F16) sb += w * vb[k];
    }
    const uint o = rs * D + VPT * u;
    [[unroll]] for (uint e = 0u; e < 4u; ++e) red[o + e] = sa[e];
    if (KV_F16) [[unroll]] for (uint e = 0u; e < 4u; ++e) red[o + 4u + e] = sb[e];
    barrier();
    for (uint d = tid; d < D; d += WG) {
      float a = 0.0;
      for (uint s = 0u; s < RPP; ++s) a += red[s * D + d];
      part[((head0 + h) * p.chunks + c) * PS + 2u + d] = a;
    }
    barrier();  // red is rewritten by the next head
  }
}
