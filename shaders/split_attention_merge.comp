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
shared float mx_s[CB];  // per-invocation maxima (workgroup size <= CB)

void main() {
  const uint qh = linear_workgroup();
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  const uint base = qh * p.chunks * PS;
  // The max over chunks: invocations take chunks tid, tid + wg, ..., then every invocation reads the
  // partial maxima itself (independent loads, 4 running maxima: no serial chain of global loads).
  float mx = kNegBig;
  for (uint c = tid; c < p.chunks; c += wg) mx = max(mx, part[base + c * PS]);
  mx_s[tid] = mx;
  barrier();
  {
    const uint nm = min(wg, p.chunks);
    float m4[4] = float[4](kNegBig, kNegBig, kNegBig, kNegBig);
    for (uint i = 0u; i < nm; i += 4u)
      [[unroll]] for (uint u = 0u; u < 4u; ++u)
        if (i + u < nm) m4[u] = max(m4[u], mx_s[i + u]);
    mx = max(max(m4[0], m4[1]), max(m4[2], m4[3]));
  }
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
        // 4 independent sums: 4 chunk loads in flight per step, not one.
        vec4 a = vec4(acc_r[k], 0.0, 0.0, 0.0);
        uint c = 0u;
        for (; c + 4u <= nb; c += 4u)
          a += vec4(part[base + (cb + c) * PS + 2u + d], part[base + (cb + c + 1u) * PS + 2u + d],
                    part[base + (cb + c + 2u) * PS + 2u + d], part[base + (cb + c + 3u) * PS + 2u + d]) *
               vec4(w_s[c], w_s[c + 1u], w_s[c + 2u], w_s[c + 3u]);
        for (; c < nb; ++c) a.x += part[base + (cb + c) * PS + 2u + d] * w_s[c];
        acc_r[k] = (a.x + a.y) + (a.z + a.w);
      }
    }
    if (SPEC_V)
      for (uint n = tid; n < NF; n += wg) {
        vec4 a = vec4(hc_s[n], 0.0, 0.0, 0.0), b = vec4(hs_s[n], 0.0, 0.0, 0.0);
        uint c = max(cb, p.h_first) - cb;
        for (; c + 4u <= nb; c += 4u) {
          const uint o = base + (cb + c) * PS + 2u + D + n;
          const vec4 w = vec4(w_s[c], w_s[c + 1u], w_s[c + 2u], w_s[c + 3u]);
          a += vec4(part[o], part[o + PS], part[o + 2u * PS], part[o + 3u * PS]) * w;
          b += vec4(part[o + NF], part[o + PS + NF], part[o + 2u * PS + NF], part[o + 3u * PS + NF]) * w;
        }
        for (; c < nb; ++c) {
          a.x += part[base + (cb + c) * PS + 2u + D + n] * w_s[c];
          b.x += part[base + (cb + c) * PS + 2u + D + NF + n] * w_s[c];
        }
        hc_s[n] = (a.x + a.y) + (a.z + a.w);
        hs_s[n] = (b.x + b.y) + (b.z + b.w);
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
        // 4 independent sums (4 frequencies' loads in flight per step); the DC weight 1/2 on n = 0.
        vec4 s4 = vec4(0.0);
        uint n = lane;
        for (; n + 3u * LANES < NF; n += 4u * LANES) {
          const uint o = c * 2u * NF + n;
          s4 += vec4(coef[o], coef[o + LANES], coef[o + 2u * LANES], coef[o + 3u * LANES]) *
                    vec4(hc_s[n] * (n == 0u ? 0.5 : 1.0), hc_s[n + LANES], hc_s[n + 2u * LANES], hc_s[n + 3u * LANES]) +
                vec4(coef[o + NF], coef[o + NF + LANES], coef[o + NF + 2u * LANES], coef[o + NF + 3u * LANES]) *
                    vec4(hs_s[n], hs_s[n + LANES], hs_s[n + 2u * LANES], hs_s[n + 3u * LANES]);
        }
        for (; n < NF; n += LANES)
          s4.x += coef[c * 2u * NF + n] * hc_s[n] * (n == 0u ? 0.5 : 1.0) + coef[c * 2u * NF + NF + n] * hs_s[n];
        sum = (s4.x + s4.y) + (s4.z + s4.w);
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
