#version 450
// Attention over a split KV cache (backend.h split_attention), first pass. Workgroup (split c, KV head g,
// query i) runs an online softmax for the G query heads of g over its slice of the rows query i sees:
// sink, middle, window (positions < pos0), then the chunk's rows 0..i (fp32, read rounded to the cache type).
// A middle row's kept dims are exact (`kept`); its compressed dims are the `pending` values before the fit,
// after it they are never rebuilt: the K part of the score is Σ_n g_c[n] cos(2π n m/T) + g_s[n] sin(..) + c
// with g from split_attention_prep.comp, and the V part is carried as h_c[n] = Σ_m P_m cos(2π n m/T),
// h_s[n] likewise (FOURIER.md path 3, evaluated directly: 2N per row and query head). Basis values come from
// a rotation recurrence reseeded from the exact table every 32 steps.
// Partial per (query, head, split): max m, sum l, acc[D], then h_c[N], h_s[N] (SPEC_V) for
// split_attention_merge.comp, which merges them with a log-sum-exp (h rescales like acc: it is linear in P).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;  // equals local_size_x; a power of two; rows per tile
layout(constant_id = 2) const uint D = 64u;    // head_dim
layout(constant_id = 3) const uint G = 1u;     // query heads per KV head
layout(constant_id = 4) const bool KV_F16 = true;
layout(constant_id = 5) const uint NF = 1u;    // N when SPEC_V, else 1
layout(constant_id = 6) const bool SPEC_K = false;  // the middle is fitted and K has compressed dims
layout(constant_id = 7) const bool SPEC_V = false;  // the middle is fitted and V has compressed dims

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer CK { float ck[]; };
layout(std430, binding = 2) readonly buffer CV { float cv[]; };
layout(std430, binding = 3) readonly buffer KS { uint ks[]; };
layout(std430, binding = 4) readonly buffer KW { uint kw[]; };
layout(std430, binding = 5) readonly buffer KK { uint kk[]; };
layout(std430, binding = 6) readonly buffer KP { float kp[]; };
layout(std430, binding = 7) readonly buffer VS { uint vs[]; };
layout(std430, binding = 8) readonly buffer VW { uint vw[]; };
layout(std430, binding = 9) readonly buffer VK { uint vk[]; };
layout(std430, binding = 10) readonly buffer VP { float vp[]; };
layout(std430, binding = 11) readonly buffer KD { int kd[]; };
layout(std430, binding = 12) readonly buffer VD { int vd[]; };
layout(std430, binding = 13) readonly buffer GV { float gv[]; };
layout(std430, binding = 14) readonly buffer Table { vec2 basis[]; };
layout(std430, binding = 15) writeonly buffer Partial { float part[]; };

layout(push_constant) uniform Params {
  uint pos0;
  uint heads;
  uint kv_heads;
  float scale;
  uint chunk_len;
  uint chunks;
  uint sink_len;
  uint middle_len;
  uint win_len;
  uint win_begin;
  uint sink;
  uint ring;
  uint fitted;
  uint period;
  uint n_freq;
  uint nk_k;
  uint nc_k;
  uint nk_v;
  uint nc_v;
} p;

#include "common/grid.glsl"
#include "common/f16_round.glsl"
#include "common/kept_k_layout.glsl"

const uint OPT = (G * D + WG - 1u) / WG;  // output values per thread
const uint NPT = (NF + WG - 1u) / WG;     // frequencies per thread (SPEC_V)
const uint PS = D + 2u + (SPEC_V ? 2u * NF : 0u);

shared float q_s[G * D];
shared float p_s[G * WG];
shared float red[G * WG];
shared int kmap[D];  // middle: >= 0 kept column, < 0: -1 - compressed column
shared int vmap[D];
shared uint klist[D];  // head g's kept K dims (their columns in `kept` are kcol0 + index)
// The score vectors g_c, g_s of the G heads, a block of NB frequencies at a time (about 8 KiB), two heads
// per vec4 so that one shared load serves two heads (the loop is bound by shared loads, not arithmetic).
const uint G2 = (G + 1u) / 2u;
const uint NB = (512u / G2) / 32u * 32u;  // the host keeps G <= 16
shared vec4 gsh[SPEC_K ? G2 * NB : 1u];

#define TYPED(name, arr)                               \
  float name(uint e) {                                 \
    if (KV_F16) {                                      \
      const vec2 v = unpackHalf2x16(arr[e >> 1]);      \
      return (e & 1u) == 0u ? v.x : v.y;               \
    }                                                  \
    return uintBitsToFloat(arr[e]);                    \
  }
TYPED(ks_at, ks)
TYPED(kw_at, kw)
TYPED(vs_at, vs)
TYPED(vw_at, vw)
TYPED(vk_at, vk)
KEPT_K_READER(kk)  // kk_at(r, e): K is stored by columns (common/kept_k_layout.glsl)

float chunk_round(float x) { return KV_F16 ? f16_round(x) : x; }

// Parts: 0 sink, 1 middle, 2 window, 3 chunk; r is the row within its part (the middle position for 1).
float k_at(uint part, uint r, uint d, uint g) {
  const uint row_len = p.kv_heads * D;
  if (part == 0u) return ks_at(r * row_len + g * D + d);
  if (part == 2u) return kw_at(((p.win_begin + r - p.sink) % p.ring) * row_len + g * D + d);
  if (part == 3u) return chunk_round(ck[r * row_len + g * D + d]);
  const int mp = kmap[d];
  if (mp >= 0) return kk_at(r, uint(mp));
  if (p.fitted != 0u) return 0.0;
  return kp[r * p.nc_k + uint(-mp - 1)];
}

float v_at(uint part, uint r, uint d, uint g) {
  const uint row_len = p.kv_heads * D;
  if (part == 0u) return vs_at(r * row_len + g * D + d);
  if (part == 2u) return vw_at(((p.win_begin + r - p.sink) % p.ring) * row_len + g * D + d);
  if (part == 3u) return chunk_round(cv[r * row_len + g * D + d]);
  const int mp = vmap[d];
  if (mp >= 0) return vk_at(r * p.nk_v + uint(mp));
  if (p.fitted != 0u) return 0.0;
  return vp[r * p.nc_v + uint(-mp - 1)];
}

vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

void build_map(uint g, bool is_k) {
  const uint nkv = p.kv_heads;
  const uint nk = is_k ? p.nk_k : p.nk_v;
  for (uint list = 0u; list < 2u; ++list) {
    const uint o = list * (nkv + 1u);
    const uint a = uint(is_k ? kd[o + g] : vd[o + g]), b = uint(is_k ? kd[o + g + 1u] : vd[o + g + 1u]);
    const uint base = 2u * (nkv + 1u) + (list == 0u ? 0u : nk);
    for (uint e = a + gl_LocalInvocationID.x; e < b; e += WG) {
      const uint d = uint(is_k ? kd[base + e] : vd[base + e]);
      const int code = list == 0u ? int(e) : -1 - int(e);
      if (is_k && list == 0u) klist[e - a] = d;
      if (is_k)
        kmap[d] = code;
      else
        vmap[d] = code;
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  kept_k_reader_init();
  const uint c = gl_WorkGroupID.x, g = gl_WorkGroupID.y, i = gl_WorkGroupID.z;
  const uint N = p.n_freq, GS = 2u * N + 4u;
  const uint head0 = g * G;

  for (uint e = tid; e < G * D; e += WG) q_s[e] = q[(i * p.heads + head0) * D + e];
  if (p.middle_len > 0u) {
    build_map(g, true);
    build_map(g, false);
  }
  barrier();

  float m[G], l_part[G], alpha[G];
  float acc[OPT];
  float hc[G * NPT], hs[G * NPT];
  [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
    m[hh] = kNegBig;
    l_part[hh] = 0.0;
  }
  [[unroll]] for (uint k = 0u; k < OPT; ++k) acc[k] = 0.0;
  [[unroll]] for (uint k = 0u; k < G * NPT; ++k) {
    hc[k] = 0.0;
    hs[k] = 0.0;
  }

  const uint before = p.sink_len + p.middle_len + p.win_len;
  const uint len = before + i + 1u;
  const uint start = c * p.chunk_len, end = min(start + p.chunk_len, len);
  const uint gbase = (i * p.heads + head0) * GS;

  for (uint part = 0u; part < 4u; ++part) {
    const uint lo = part == 0u ? 0u : part == 1u ? p.sink_len : part == 2u ? p.sink_len + p.middle_len : before;
    const uint hi = part == 0u ? p.sink_len : part == 1u ? p.sink_len + p.middle_len : part == 2u ? before : len;
    const uint a = max(start, lo), b = min(end, hi);
    const bool spectral = part == 1u && p.fitted != 0u;
    for (uint t0 = a; t0 < b; t0 += WG) {
      const uint t = t0 + tid;
      const bool live = t < b;
      const uint r = t - lo;
      float s[G];
      [[unroll]] for (uint hh = 0u; hh < G; ++hh) s[hh] = 0.0;
      if (live) {
        if (spectral) {
          // A fitted middle: only the kept dims are stored (head g's columns are contiguous).
          const uint kc0 = uint(kd[g]), nkg = uint(kd[g + 1u]) - kc0;
          for (uint e = 0u; e < nkg; ++e) {
            const float kv = kk_at(r, kc0 + e);
            const uint d = klist[e];
            [[unroll]] for (uint hh = 0u; hh < G; ++hh) s[hh] += q_s[hh * D + d] * kv;
          }
        } else {
          for (uint d = 0u; d < D; ++d) {
            const float kv = k_at(part, r, d, g);
            [[unroll]] for (uint hh = 0u; hh < G; ++hh) s[hh] += q_s[hh * D + d] * kv;
          }
        }
      }
      if (SPEC_K && spectral) {
        // Σ_n g_c[n] cos(2π n m/T) + g_s[n] sin(2π n m/T): the basis by rotation, reseeded from the exact
        // table every 32 frequencies; g in shared memory, NB frequencies at a time (every thread loads).
        const uint mm = r % p.period;
        const vec2 w = basis[mm];
        const uint step32 = (32u * mm) % p.period;
        uint idx = 0u;
        vec2 z = vec2(1.0, 0.0);
        float sc[G];
        [[unroll]] for (uint hh = 0u; hh < G; ++hh) sc[hh] = gv[gbase + hh * GS + 2u * N];
        for (uint n0 = 0u; n0 < N; n0 += NB) {
          const uint nb = min(NB, N - n0);
          barrier();
          for (uint e = tid; e < G2 * nb; e += WG) {
            const uint h2 = e / nb, n = e % nb;
            const uint a = gbase + 2u * h2 * GS + n0 + n;
            const bool pair = 2u * h2 + 1u < G;
            gsh[h2 * NB + n] = vec4(gv[a], gv[a + N], pair ? gv[a + GS] : 0.0, pair ? gv[a + GS + N] : 0.0);
          }
          barrier();
          if (live)
            for (uint n = 0u; n < nb; ++n) {
              if (n0 + n > 0u && (n & 31u) == 0u) {
                idx += step32;
                if (idx >= p.period) idx -= p.period;
                z = basis[idx];
              }
              [[unroll]] for (uint h2 = 0u; h2 < G2; ++h2) {
                const vec4 gg = gsh[h2 * NB + n];
                sc[2u * h2] += gg.x * z.x + gg.y * z.y;
                if (2u * h2 + 1u < G) sc[2u * h2 + 1u] += gg.z * z.x + gg.w * z.y;
              }
              z = cmul(z, w);
            }
        }
        [[unroll]] for (uint hh = 0u; hh < G; ++hh) s[hh] += sc[hh];
      }
      [[unroll]] for (uint hh = 0u; hh < G; ++hh) s[hh] = live ? s[hh] * p.scale : kNegBig;

      // Per-head tile max, then the softmax weights of the tile.
      [[unroll]] for (uint hh = 0u; hh < G; ++hh) red[hh * WG + tid] = s[hh];
      barrier();
      for (uint k = WG / 2u; k > 0u; k >>= 1) {
        if (tid < k)
          [[unroll]] for (uint hh = 0u; hh < G; ++hh) red[hh * WG + tid] = max(red[hh * WG + tid], red[hh * WG + tid + k]);
        barrier();
      }
      [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
        const float m_new = max(m[hh], red[hh * WG]);
        const float pr = live ? exp(s[hh] - m_new) : 0.0;
        alpha[hh] = exp(m[hh] - m_new);
        l_part[hh] = l_part[hh] * alpha[hh] + pr;
        m[hh] = m_new;
        p_s[hh * WG + tid] = pr;
      }
      barrier();

      const uint tile = min(WG, b - t0);
      const uint r0 = t0 - lo;
      [[unroll]] for (uint k = 0u; k < OPT; ++k) {
        const uint o = tid + k * WG;
        if (o < G * D) {
          const uint hh = o / D, d = o % D;
          float av = acc[k] * alpha[hh];
          if (!(spectral && vmap[d] < 0))
            for (uint j = 0u; j < tile; ++j) av += p_s[hh * WG + j] * v_at(part, r0 + j, d, g);
          acc[k] = av;
        }
      }
      if (SPEC_V) {
        [[unroll]] for (uint hh = 0u; hh < G; ++hh)
          [[unroll]] for (uint k = 0u; k < NPT; ++k) {
            hc[hh * NPT + k] *= alpha[hh];
            hs[hh * NPT + k] *= alpha[hh];
          }
        if (spectral) {
          // Rows outer, the thread's NPT frequencies inner: each weight is read from shared memory once per
          // row, not once per frequency. Rotation per frequency, reseeded from the table every 32 rows.
          vec2 z[NPT], w[NPT];
          uint idx[NPT], step32[NPT];
          [[unroll]] for (uint k = 0u; k < NPT; ++k) {
            const uint n = min(tid + k * WG, N - 1u), nn = n % p.period;
            w[k] = basis[nn];
            step32[k] = (32u * nn) % p.period;
            idx[k] = (n * r0) % p.period;
            z[k] = basis[idx[k]];
          }
          for (uint j = 0u; j < tile; ++j) {
            if (j > 0u && (j & 31u) == 0u)
              [[unroll]] for (uint k = 0u; k < NPT; ++k) {
                idx[k] += step32[k];
                if (idx[k] >= p.period) idx[k] -= p.period;
                z[k] = basis[idx[k]];
              }
            float pr[G];
            [[unroll]] for (uint hh = 0u; hh < G; ++hh) pr[hh] = p_s[hh * WG + j];
            [[unroll]] for (uint k = 0u; k < NPT; ++k) {
              [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
                hc[hh * NPT + k] += pr[hh] * z[k].x;
                hs[hh * NPT + k] += pr[hh] * z[k].y;
              }
              z[k] = cmul(z[k], w[k]);
            }
          }
        }
      }
      barrier();  // p_s and red are rewritten by the next tile
    }
  }

  [[unroll]] for (uint hh = 0u; hh < G; ++hh) red[hh * WG + tid] = l_part[hh];
  barrier();
  for (uint k = WG / 2u; k > 0u; k >>= 1) {
    if (tid < k)
      [[unroll]] for (uint hh = 0u; hh < G; ++hh) red[hh * WG + tid] += red[hh * WG + tid + k];
    barrier();
  }
  if (tid == 0u)
    [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
      const uint base = ((i * p.heads + head0 + hh) * p.chunks + c) * PS;
      part[base] = m[hh];
      part[base + 1u] = red[hh * WG];
    }
  [[unroll]] for (uint k = 0u; k < OPT; ++k) {
    const uint o = tid + k * WG;
    if (o < G * D) {
      const uint hh = o / D, d = o % D;
      part[((i * p.heads + head0 + hh) * p.chunks + c) * PS + 2u + d] = acc[k];
    }
  }
  if (SPEC_V)
    [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
      const uint base = ((i * p.heads + head0 + hh) * p.chunks + c) * PS + 2u + D;
      [[unroll]] for (uint k = 0u; k < NPT; ++k) {
        const uint n = tid + k * WG;
        if (n < N) {
          part[base + n] = hc[hh * NPT + k];
          part[base + NF + n] = hs[hh * NPT + k];
        }
      }
    }
}
