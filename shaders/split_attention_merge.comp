#version 450
// Split-cache attention, merge step 2, after split_merge_sum.comp (which summed the chunks' partials of each
// (query, head) with their log-sum-exp weights into sums[qh] = [-, l, acc[D], h_c[N], h_s[N]]): adds the
// middle's compressed V dims, out_j = (acc_j + a_j/N Σ_n w_n (C_j[n] h_c[n] + S_j[n] h_s[n]) + b_j h_c[0]) / l
// (Σ_m P_m = h_c[0], w_0 = 1/2), and writes the other dims as acc_j / l. Workgroup = (block of CPB compressed
// dims of the head's KV group, query head): LANES invocations per dim (a spec constant) on neighbouring
// frequencies (coalesced coefficient rows, 4 loads in flight each), h staged in shared memory; block 0 also
// writes the dims that are not compressed. Without SPEC_V one block per head writes acc / l.
// INLINE_SUM: step 1 in this pass: each workgroup sums its head's partials (split_merge_sum.comp's
// arithmetic) into shared memory before the above, so that one dispatch and its barrier-separated phase
// replace two. Every block of a head repeats the sum: the host picks it when the partials are few.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x = 256) in;
layout(constant_id = 0) const uint D = 64u;
layout(constant_id = 1) const uint NF = 1u;
layout(constant_id = 2) const bool SPEC_V = false;
layout(constant_id = 3) const bool INLINE_SUM = false;
// Invocations per compressed dim, a power of two <= WG: fewer lanes mean more dims a workgroup, so fewer
// workgroups repeating a head's INLINE_SUM.
layout(constant_id = 4) const uint LANES = 32u;

layout(std430, binding = 0) readonly buffer Sums { float sums[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) readonly buffer Coef { float coef[]; };  // V: [n_comp, 2N]
layout(std430, binding = 3) readonly buffer Norm { float norm[]; };  // V: [n_comp, 8]
layout(std430, binding = 4) readonly buffer Dims { int dims[]; };
// INLINE_SUM: the partials, as split_merge_sum.comp reads them.
layout(std430, binding = 5) readonly buffer Partial { float part[]; };
layout(std430, binding = 6) readonly buffer MidPartial { float mpart[]; };

layout(push_constant) uniform Params {
  uint count;  // queries * heads
  uint heads;
  uint kv_heads;
  uint n_keep;
  // INLINE_SUM: split_merge_sum.comp's chunks, h_first and mid_chunks (chunks + mid_chunks <= WG).
  uint chunks;
  uint h_first;
  uint mid_chunks;
} p;

#include "common/grid.glsl"

const uint WG = 256u;
const uint CPB = WG / LANES;     // compressed dims per workgroup
const uint PS = D + 2u + (SPEC_V ? 2u * NF : 0u);
shared float hc_s[SPEC_V ? NF : 1u], hs_s[SPEC_V ? NF : 1u];
shared float red[WG];
shared uint comp_s[D];  // 1: the dim is compressed (written by a coefficient block)
shared float sums_s[INLINE_SUM ? PS : 1u];  // INLINE_SUM: the head's sums row (column 0 unused)
shared float w_s[INLINE_SUM ? WG : 1u];     // INLINE_SUM: chunk weights exp(m_c − max)
uint g_base;                                 // the head's row in sums

float sum_at(uint j) { return INLINE_SUM ? sums_s[j] : sums[g_base + j]; }

// Column j of chunk c of query head qh, chunks of mpart following those of part.
float part_at(uint qh, uint c, uint j) {
  return c < p.chunks ? part[(qh * p.chunks + c) * PS + j]
                      : mpart[(qh * p.mid_chunks + c - p.chunks) * PS + j];
}

// INLINE_SUM: the head's chunks summed column by column with the log-sum-exp weights into sums_s
// (split_merge_sum.comp's sums: h only from chunks h_first..). One column an invocation, 8 chunks in flight.
void inline_sums(uint tid, uint qh) {
  const uint chunks = p.chunks + p.mid_chunks;
  const float m = tid < chunks ? part_at(qh, tid, 0u) : kNegBig;
  red[tid] = m;
  barrier();
  [[unroll]] for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  if (tid < chunks) w_s[tid] = exp(m - red[0]);
  barrier();
  for (uint j = tid + 1u; j < PS; j += WG) {
    vec4 a = vec4(0.0), b = vec4(0.0);
    uint c = j >= 2u + D ? p.h_first : 0u;
    for (; c + 7u < chunks; c += 8u) {
      float x[8];
      [[unroll]] for (uint k = 0u; k < 8u; ++k) x[k] = part_at(qh, c + k, j);
      a += vec4(x[0], x[1], x[2], x[3]) * vec4(w_s[c], w_s[c + 1u], w_s[c + 2u], w_s[c + 3u]);
      b += vec4(x[4], x[5], x[6], x[7]) * vec4(w_s[c + 4u], w_s[c + 5u], w_s[c + 6u], w_s[c + 7u]);
    }
    for (; c < chunks; ++c) a.x += part_at(qh, c, j) * w_s[c];
    a += b;
    sums_s[j] = (a.x + a.y) + (a.z + a.w);
  }
  barrier();
}

void main() {
  const uint qh = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x, blk = gl_WorkGroupID.x;
  g_base = qh * PS;
  uint c0 = 0u, c1 = 0u, comp = 0u;
  if (SPEC_V) {
    const uint g = (qh % p.heads) / (p.heads / p.kv_heads);
    c0 = uint(dims[p.kv_heads + 1u + g]);
    c1 = uint(dims[p.kv_heads + 2u + g]);
    comp = 2u * (p.kv_heads + 1u) + p.n_keep;
  }
  const uint cb = c0 + blk * CPB;
  if (blk != 0u && (!SPEC_V || cb >= c1)) return;  // uniform over the workgroup: no dims of its own
  if (INLINE_SUM) inline_sums(tid, qh);
  const float total = sum_at(1u);
  if (blk == 0u) {
    for (uint d = tid; d < D; d += WG) comp_s[d] = 0u;
    barrier();
    for (uint c = c0 + tid; c < c1; c += WG) comp_s[uint(dims[comp + c])] = 1u;
    barrier();
    for (uint d = tid; d < D; d += WG)
      if (comp_s[d] == 0u) o[qh * D + d] = sum_at(2u + d) / total;
  }
  if (!SPEC_V) return;
  if (cb >= c1) return;  // uniform over the workgroup
  for (uint n = tid; n < NF; n += WG) {
    hc_s[n] = sum_at(2u + D + n) * (n == 0u ? 0.5 : 1.0);  // the DC weight 1/2
    hs_s[n] = sum_at(2u + D + NF + n);
  }
  barrier();
  const uint lane = tid % LANES, slot = tid / LANES, c = cb + slot;
  float sum = 0.0;
  if (c < c1) {
    vec4 s4 = vec4(0.0);
    const uint row = c * 2u * NF;
    uint n = lane;
    for (; n + 3u * LANES < NF; n += 4u * LANES) {
      const uint r = row + n;
      s4 += vec4(coef[r], coef[r + LANES], coef[r + 2u * LANES], coef[r + 3u * LANES]) *
                vec4(hc_s[n], hc_s[n + LANES], hc_s[n + 2u * LANES], hc_s[n + 3u * LANES]) +
            vec4(coef[r + NF], coef[r + NF + LANES], coef[r + NF + 2u * LANES], coef[r + NF + 3u * LANES]) *
                vec4(hs_s[n], hs_s[n + LANES], hs_s[n + 2u * LANES], hs_s[n + 3u * LANES]);
    }
    for (; n < NF; n += LANES) s4.x += coef[row + n] * hc_s[n] + coef[row + NF + n] * hs_s[n];
    sum = (s4.x + s4.y) + (s4.z + s4.w);
  }
  red[tid] = sum;
  barrier();
  [[unroll]] for (uint s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) red[tid] += red[tid + s];
    barrier();
  }
  if (lane == 0u && c < c1) {
    const float rho_rec = norm[c * 8u + 3u];
    const float a = rho_rec > 0.0 ? norm[c * 8u + 1u] / rho_rec : 0.0;
    const float b = norm[c * 8u] - a * norm[c * 8u + 2u];
    const uint d = uint(dims[comp + c]);
    o[qh * D + d] = (sum_at(2u + d) + a * red[tid] / float(NF) + b * 2.0 * hc_s[0]) / total;
  }
}
