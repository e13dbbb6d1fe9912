#version 450
// Split-cache attention, second pass: combines the split partials of split_attention.comp for one
// (query, head) with a log-sum-exp, h_c/h_s like the output (they are linear in the weights), then adds the
// middle's compressed V dims: out_j += a_j/N Σ_n w_n (C_j[n] h_c[n] + S_j[n] h_s[n]) + b_j Σ_m P_m
// (Σ_m P_m = h_c[0]), and divides by the softmax sum. h is read from chunks h_first.. only: with the decode
// middle pass (split_middle_values.comp) the other chunks (sink, window, the call's rows) carry none. Each
// chunk's weight exp(m_c − max) is computed once, into shared memory, CB chunks at a time.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64u;
layout(constant_id = 2) const uint NF = 1u;
layout(constant_id = 3) const bool SPEC_V = false;

layout(std430, binding = 0) readonly buffer Partial { float part[]; };
layout(std430, binding = 1) writeonly buffer Out { float o[]; };
layout(std430, binding = 2) readonly buffer Coef { float coef[]; };  // V: [n_comp, 2N]
layout(std430, binding = 3) readonly buffer Norm { float norm[]; };  // V: [n_comp, 8]
layout(std430, binding = 4) readonly buffer Dims { int dims[]; };

layout(push_constant) uniform Params {
  uint chunks;
  uint count;  // queries * heads
  uint heads;
  uint kv_heads;
  uint n_keep;
  uint h_first;  // the first chunk that carries h (SPEC_V)
} p;

#include "common/grid.glsl"

const uint PS = D + 2u + (SPEC_V ? 2u * NF : 0u);
const uint LANES = 4u;
shared float acc_s[D];
shared float red[SPEC_V ? 1024u : 1u];  // >= workgroup size
shared float hc_s[NF], hs_s[NF];
const uint CB = 256u;
shared float w_s[CB];  // exp(m_c - max) of the current block of chunks

void main() {
  const uint qh = linear_workgroup();
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  const uint base = qh * p.chunks * PS;
  float mx = kNegBig;
  for (uint c = 0u; c < p.chunks; ++c) mx = max(mx, part[base + c * PS]);
  float total = 0.0;
  float acc_r[(D + 63u) / 64u];  // d = tid + k·wg (wg >= 64)
  [[unroll]] for (uint k = 0u; k < (D + 63u) / 64u; ++k) acc_r[k] = 0.0;
  for (uint n = tid; n < NF; n += wg) {
    hc_s[n] = 0.0;
    hs_s[n] = 0.0;
  }
  for (uint cb = 0u; cb < p.chunks; cb += CB) {
    const uint nb = min(CB, p.chunks - cb);
    barrier();  // w_s is free
    for (uint c = tid; c < nb; c += wg) w_s[c] = exp(part[base + (cb + c) * PS] - mx);
    barrier();
    for (uint c = 0u; c < nb; ++c) total += part[base + (cb + c) * PS + 1u] * w_s[c];
    [[unroll]] for (uint k = 0u; k < (D + 63u) / 64u; ++k) {
      const uint d = tid + k * wg;
      if (d < D) {
        float a = acc_r[k];
        for (uint c = 0u; c < nb; ++c) a += part[base + (cb + c) * PS + 2u + d] * w_s[c];
        acc_r[k] = a;
      }
    }
    if (SPEC_V)
      for (uint n = tid; n < NF; n += wg) {
        float a = hc_s[n], b = hs_s[n];
        for (uint c = max(cb, p.h_first) - cb; c < nb; ++c) {
          a += part[base + (cb + c) * PS + 2u + D + n] * w_s[c];
          b += part[base + (cb + c) * PS + 2u + D + NF + n] * w_s[c];
        }
        hc_s[n] = a;
        hs_s[n] = b;
      }
  }
  [[unroll]] for (uint k = 0u; k < (D + 63u) / 64u; ++k) {
    const uint d = tid + k * wg;
    if (d < D) acc_s[d] = acc_r[k];
  }
  if (SPEC_V) {
    barrier();
    const uint g = (qh % p.heads) / (p.heads / p.kv_heads);
    const uint c0 = uint(dims[p.kv_heads + 1u + g]), c1 = uint(dims[p.kv_heads + 2u + g]);
    const uint comp = 2u * (p.kv_heads + 1u) + p.n_keep;
    // LANES invocations per compressed dim, adjacent frequencies (coalesced), then a shared-memory sum.
    const uint lane = tid % LANES, slot = tid / LANES, slots = wg / LANES;
    for (uint cb = c0; cb < c1; cb += slots) {
      const uint c = cb + slot;
      float sum = 0.0;
      if (c < c1) {
        for (uint n = lane; n < NF; n += LANES)
          sum += coef[c * 2u * NF + n] * hc_s[n] * (n == 0u ? 0.5 : 1.0) + coef[c * 2u * NF + NF + n] * hs_s[n];
      }
      red[tid] = sum;
      barrier();
      if (lane == 0u && c < c1) {
        float total_c = 0.0;
        for (uint k = 0u; k < LANES; ++k) total_c += red[tid + k];
        const float rho_rec = norm[c * 8u + 3u];
        const float a = rho_rec > 0.0 ? norm[c * 8u + 1u] / rho_rec : 0.0;
        const float b = norm[c * 8u] - a * norm[c * 8u + 2u];
        acc_s[uint(dims[comp + c])] += a * total_c / float(NF) + b * hc_s[0];
      }
      barrier();
    }
  }
  barrier();
  for (uint d = tid; d < D; d += wg) o[qh * D + d] = acc_s[d] / total;
}
