#version 450
// Attention over a split KV cache (backend.h split_attention), first pass, tiled. Workgroup (split c, KV
// head g, query i) runs an online softmax for the G query heads of g over its slice of the rows query i
// sees: sink, middle, window (positions < pos0), then the chunk's rows 0..i (fp32, rounded to the cache
// type), in tiles of TR rows that never cross a part. Same partials as split_attention_rows.comp (the
// fallback for shapes this one does not take): max m, sum l, acc[D], then h_c[N], h_s[N] (SPEC_V).
//
// Per tile:
//  1. exact K scores: the tile's rows are staged in shared memory (st, fp32, odd row stride) TS rows at a
//     time, neighbouring invocations loading neighbouring 16-byte words (sink, window: 8 values per load;
//     chunk rows: two vec4) or neighbouring values (the middle's kept dims and pending values, which are
//     narrow rows; K's kept rows are stored by columns, common/kept_k_layout.glsl, so their rows are N
//     words apart in a plane); then NQ invocations per row dot it with the G query vectors (broadcast
//     reads) and their partials are summed. A fitted middle stages only head g's kept K dims, against q at
//     those dims (qk_s).
//  2. spectral K (fitted middle): Σ_n g_c[n] cos(2π n m/T) + g_s[n] sin(2π n m/T) + Σ_j q_j b_j with g
//     from split_attention_prep.comp. Register blocking: invocation (slice f, row group rr) holds RB rows
//     (rr + 32 k) and the G heads' sums, and walks its slice's blocks of 32 frequencies; per frequency one
//     broadcast shared load of g (two heads per vec4) serves RB·G multiply-add pairs, and the basis comes
//     from a rotation per row reseeded from the exact table at each block (the seed for the next block is
//     loaded a block ahead). The FS slices' sums are added into the scores one slice after another.
//  3. softmax: per head tile max, probabilities in place (p_s, [row][GP]), running l per invocation.
//  4. exact V: staged like K; invocation (head, dim) weighs the staged column (a fitted middle stages the
//     kept V dims only; the compressed ones are added by the merge from h).
//  5. spectral V: invocation owns NPT frequencies and walks the tile's rows, h_c[n] += P_m cos(2π n m/T),
//     h_s likewise, for the G heads (one vec4 load of the weights per row serves NPT·G pairs); rotation in
//     m reseeded from the table every 32 rows.
// With the decode middle pass (split_middle_fft.comp, or split_middle_scores.comp + split_middle_values.comp)
// the host passes middle_len = 0: this pass then covers sink, window and the call's rows only, in chunk slots
// of its own (the middle pass writes another buffer, so the two run side by side; split_merge_sum.comp
// reads both).
// g stays in shared memory for the whole dispatch when N <= NB (the 8B shape: G 4, N 512), otherwise it is
// loaded NB frequencies at a time in each tile. Needs WG = 128, G <= 8, D a multiple of 8, <= 128 (host
// checks); shared memory about 31.5 KiB at most; no subgroup operation.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;  // equals local_size_x; 128
layout(constant_id = 2) const uint D = 64u;    // head_dim
layout(constant_id = 3) const uint G = 1u;     // query heads per KV head, <= 8
layout(constant_id = 4) const bool KV_F16 = true;
layout(constant_id = 5) const uint NF = 1u;    // N when SPEC_V, else 1
layout(constant_id = 6) const bool SPEC_K = false;  // the middle is fitted and K has compressed dims
layout(constant_id = 7) const bool SPEC_V = false;  // the middle is fitted and V has compressed dims
// h floats reserved per partial when this pass does not carry h (SPEC_V false) but the decode middle pass's
// partials (same layout) carry it: 2·HN, the merge reads h from the middle's chunks only.
layout(constant_id = 8) const uint HN = 0u;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer CK { vec4 ck[]; };
layout(std430, binding = 2) readonly buffer CV { vec4 cv[]; };
layout(std430, binding = 3) readonly buffer KS { uvec4 ks[]; };
layout(std430, binding = 4) readonly buffer KW { uvec4 kw[]; };
layout(std430, binding = 5) readonly buffer KK { uint kk[]; };
layout(std430, binding = 6) readonly buffer KP { float kp[]; };
layout(std430, binding = 7) readonly buffer VS { uvec4 vs[]; };
layout(std430, binding = 8) readonly buffer VW { uvec4 vw[]; };
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

const uint TR = WG;                              // rows per tile
const uint RG = 32u;                             // row groups of the spectral score
const uint FS = WG / RG;                         // frequency slices of the spectral score
const uint RB = TR / RG;                         // rows per invocation in the spectral score
const uint GP = G <= 4u ? 4u : 8u;               // p_s row stride (whole vec4s)
const uint G2 = (G + 1u) / 2u;                   // vec4s of g per frequency (two heads each)
const uint GSH = G <= 4u ? 1024u : 512u;         // vec4s of g in shared memory (16 / 8 KiB)
const uint NB = (GSH / G2) / 32u * 32u;          // frequencies of g per shared block
const uint STAGE = 1536u;                        // floats of the row stage
const uint OPT = (G * D + WG - 1u) / WG;         // exact outputs per invocation
const uint NPT = (NF + WG - 1u) / WG;            // frequencies per invocation (SPEC_V)
const uint PS = D + 2u + (SPEC_V ? 2u * NF : 2u * HN);
const uint TPH = WG / GP;                        // invocations per head in the softmax

shared float q_s[G * D];
shared float qk_s[G * D];  // q at head g's kept K dims, in kept order
shared int kmap[D];        // middle: >= 0 kept column, < 0: -1 - compressed column
shared int vmap[D];
shared vec4 gsh[SPEC_K ? GSH : 1u];  // [n][G2]: g_c, g_s of heads 2h2, 2h2 + 1
shared vec4 p_s[TR * GP / 4u];       // [row][GP]: scores, then probabilities
shared float st[STAGE];
shared float red[WG * G];
shared float m_s[G], alpha_s[G];

uint tid, g, gbase, kc0, nkg, vc0, nkv;

#define TYPED(name, arr)                               \
  float name(uint e) {                                 \
    if (KV_F16) {                                      \
      const vec2 v = unpackHalf2x16(arr[e >> 1]);      \
      return (e & 1u) == 0u ? v.x : v.y;               \
    }                                                  \
    return uintBitsToFloat(arr[e]);                    \
  }
TYPED(vk_at, vk)
KEPT_K_READER(kk)  // kk_at(r, e): K is stored by columns (common/kept_k_layout.glsl)

float pget(uint j, uint h) {
  const uint x = j * GP + h;
  return p_s[x >> 2][x & 3u];
}
void pset(uint j, uint h, float v) {
  const uint x = j * GP + h;
  p_s[x >> 2][x & 3u] = v;
}

vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

// Values 8u .. 8u+7 of head g in row r of part 0 (sink), 2 (window) or 3 (chunk).
void load8(uint part, uint r, uint u, bool is_k, out vec4 a, out vec4 b) {
  const uint row_len = p.kv_heads * D;
  if (part == 3u) {
    const uint o = (r * row_len + g * D + 8u * u) / 4u;
    if (is_k) {
      a = ck[o];
      b = ck[o + 1u];
    } else {
      a = cv[o];
      b = cv[o + 1u];
    }
    if (KV_F16) {
      a = f16_round4(a);
      b = f16_round4(b);
    }
    return;
  }
  const uint row = part == 0u ? r : (p.win_begin + r - p.sink) % p.ring;
  if (KV_F16) {
    const uint o = (row * row_len + g * D) / 8u + u;
    uvec4 w;
    if (part == 0u)
      w = is_k ? ks[o] : vs[o];
    else
      w = is_k ? kw[o] : vw[o];
    a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    b = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
  } else {
    const uint o = (row * row_len + g * D + 8u * u) / 4u;
    uvec4 w0, w1;
    if (part == 0u) {
      w0 = is_k ? ks[o] : vs[o];
      w1 = is_k ? ks[o + 1u] : vs[o + 1u];
    } else {
      w0 = is_k ? kw[o] : vw[o];
      w1 = is_k ? kw[o + 1u] : vw[o + 1u];
    }
    a = uintBitsToFloat(w0);
    b = uintBitsToFloat(w1);
  }
}

// Middle row r, dim d, before the fit (or over a rebuilt middle): kept value or `pending`.
float mid_at(uint r, uint d, bool is_k) {
  if (is_k) {
    const int mp = kmap[d];
    return mp >= 0 ? kk_at(r, uint(mp)) : kp[r * p.nc_k + uint(-mp - 1)];
  }
  const int mp = vmap[d];
  return mp >= 0 ? vk_at(r * p.nk_v + uint(mp)) : vp[r * p.nc_v + uint(-mp - 1)];
}

// Rows j0 .. j0+ts-1 of the tile (part rows r0 + j) into st, row stride DP, DX columns.
void stage(uint part, uint r0, uint j0, uint ts, uint DX, uint DP, bool is_k, bool fitted_mid) {
  if (part != 1u) {
    const uint U = D / 8u;
    for (uint x = tid; x < ts * U; x += WG) {
      const uint j = x / U, u = x % U;
      vec4 a, b;
      load8(part, r0 + j0 + j, u, is_k, a, b);
      const uint o = j * DP + 8u * u;
      [[unroll]] for (uint e = 0u; e < 4u; ++e) {
        st[o + e] = a[e];
        st[o + 4u + e] = b[e];
      }
    }
  } else if (fitted_mid) {
    for (uint x = tid; x < ts * DX; x += WG) {
      const uint j = x / DX, e = x % DX, r = r0 + j0 + j;
      st[j * DP + e] = is_k ? kk_at(r, kc0 + e) : vk_at(r * p.nk_v + vc0 + e);
    }
  } else {
    for (uint x = tid; x < ts * DX; x += WG) {
      const uint j = x / DX, e = x % DX;
      st[j * DP + e] = mid_at(r0 + j0 + j, e, is_k);
    }
  }
}

// Exact K part of the tile's scores (unscaled) into p_s.
void k_exact(uint part, uint r0, uint rows, bool fitted_mid) {
  const uint DX = fitted_mid ? nkg : D;
  if (DX == 0u) {
    for (uint j = tid; j < rows; j += WG)
      [[unroll]] for (uint h = 0u; h < G; ++h) pset(j, h, 0.0);
    return;
  }
  const uint DP = DX | 1u;
  const uint TS = min(TR, STAGE / DP), NQ = WG / TS;
  const uint jj = tid % TS, qq = tid / TS;
  for (uint j0 = 0u; j0 < rows; j0 += TS) {
    const uint ts = min(TS, rows - j0);
    barrier();  // st and red are free
    stage(part, r0, j0, ts, DX, DP, true, fitted_mid);
    barrier();
    float s[G];
    [[unroll]] for (uint h = 0u; h < G; ++h) s[h] = 0.0;
    if (qq < NQ && jj < ts) {
      if (fitted_mid) {
        for (uint e = qq; e < DX; e += NQ) {
          const float v = st[jj * DP + e];
          [[unroll]] for (uint h = 0u; h < G; ++h) s[h] += qk_s[h * D + e] * v;
        }
      } else {
        for (uint e = qq; e < DX; e += NQ) {
          const float v = st[jj * DP + e];
          [[unroll]] for (uint h = 0u; h < G; ++h) s[h] += q_s[h * D + e] * v;
        }
      }
    }
    if (qq < NQ) [[unroll]] for (uint h = 0u; h < G; ++h) red[(qq * TS + jj) * G + h] = s[h];
    barrier();
    if (tid < ts)
      [[unroll]] for (uint h = 0u; h < G; ++h) {
        float sum = 0.0;
        for (uint k = 0u; k < NQ; ++k) sum += red[(k * TS + tid) * G + h];
        pset(j0 + tid, h, sum);
      }
  }
}

void load_g(uint n0, uint nb) {
  const uint N = p.n_freq, GS = 2u * N + 4u;
  for (uint e = tid; e < nb * G2; e += WG) {
    const uint n = e / G2, h2 = e % G2;
    const uint a = gbase + 2u * h2 * GS + n0 + n;
    const bool pair = 2u * h2 + 1u < G;
    gsh[e] = vec4(gv[a], gv[a + N], pair ? gv[a + GS] : 0.0, pair ? gv[a + GS + N] : 0.0);
  }
}

// Spectral K part of a fitted middle tile, added into p_s.
void spec_scores(uint r0, uint rows) {
  const uint N = p.n_freq, T = p.period, GS = 2u * N + 4u;
  const uint f = tid / RG, rr = tid % RG;
  uint mk[RB];
  vec2 w[RB];
  float sc[RB * G];
  [[unroll]] for (uint k = 0u; k < RB; ++k) {
    mk[k] = (r0 + min(rr + k * RG, rows - 1u)) % T;
    w[k] = basis[mk[k]];
  }
  [[unroll]] for (uint e = 0u; e < RB * G; ++e) sc[e] = 0.0;
  for (uint n0 = 0u; n0 < N; n0 += NB) {
    const uint nb = min(NB, N - n0);
    if (N > NB) {
      barrier();
      load_g(n0, nb);
      barrier();
    }
    vec2 nz[RB];
    [[unroll]] for (uint k = 0u; k < RB; ++k) nz[k] = basis[(min(n0 + f * 32u, N - 1u) * mk[k]) % T];
    for (uint b0 = f * 32u; b0 < nb; b0 += FS * 32u) {
      vec2 z[RB];
      const uint nxt = min(n0 + b0 + FS * 32u, N - 1u);
      [[unroll]] for (uint k = 0u; k < RB; ++k) {
        z[k] = nz[k];
        nz[k] = basis[(nxt * mk[k]) % T];  // in flight during this block
      }
      const uint cnt = min(32u, nb - b0);
      for (uint s = 0u; s < cnt; ++s) {
        vec4 gg[G2];
        [[unroll]] for (uint h2 = 0u; h2 < G2; ++h2) gg[h2] = gsh[(b0 + s) * G2 + h2];
        [[unroll]] for (uint k = 0u; k < RB; ++k) {
          [[unroll]] for (uint h2 = 0u; h2 < G2; ++h2) {
            sc[k * G + 2u * h2] += gg[h2].x * z[k].x + gg[h2].y * z[k].y;
            if (2u * h2 + 1u < G) sc[k * G + 2u * h2 + 1u] += gg[h2].z * z[k].x + gg[h2].w * z[k].y;
          }
          z[k] = cmul(z[k], w[k]);
        }
      }
    }
  }
  float cst[G];
  [[unroll]] for (uint h = 0u; h < G; ++h) cst[h] = gv[gbase + h * GS + 2u * N];
  for (uint ff = 0u; ff < FS; ++ff) {
    barrier();  // k_exact's scores, or the previous slice's sums, are in p_s
    if (f == ff)
      [[unroll]] for (uint k = 0u; k < RB; ++k) {
        const uint j = rr + k * RG;
        if (j < rows)
          [[unroll]] for (uint h = 0u; h < G; ++h) pset(j, h, pget(j, h) + sc[k * G + h] + (ff == 0u ? cst[h] : 0.0));
      }
  }
}

float acc[OPT];
float hc[G * NPT], hs[G * NPT];
float l_own;

// Softmax of the tile's scores (p_s, unscaled) into probabilities; rescales acc and h by alpha.
void softmax(uint rows) {
  const uint h = tid / TPH, k = tid % TPH;
  barrier();  // the scores are complete
  float mx = kNegBig;
  if (h < G)
    for (uint j = k; j < rows; j += TPH) mx = max(mx, pget(j, h));
  red[tid] = mx;
  barrier();
  if (tid < G) {
    float t = kNegBig;
    for (uint e = 0u; e < TPH; ++e) t = max(t, red[tid * TPH + e]);
    const float m_new = max(m_s[tid], t * p.scale);
    alpha_s[tid] = exp(m_s[tid] - m_new);
    m_s[tid] = m_new;
  }
  barrier();
  if (h < G) {
    const float mn = m_s[h];
    float ls = 0.0;
    for (uint j = k; j < rows; j += TPH) {
      const float pr = exp(pget(j, h) * p.scale - mn);
      pset(j, h, pr);
      ls += pr;
    }
    l_own = l_own * alpha_s[h] + ls;
  }
  [[unroll]] for (uint e = 0u; e < OPT; ++e) {
    const uint o = tid + e * WG;
    if (o < G * D) acc[e] *= alpha_s[o / D];
  }
  [[unroll]] for (uint hh = 0u; hh < G; ++hh)
    [[unroll]] for (uint e = 0u; e < NPT; ++e) {
      hc[hh * NPT + e] *= alpha_s[hh];
      hs[hh * NPT + e] *= alpha_s[hh];
    }
  barrier();  // probabilities complete
}

void v_exact(uint part, uint r0, uint rows, bool fitted_mid) {
  const uint DX = fitted_mid ? nkv : D;
  if (DX == 0u) return;
  const uint DP = DX | 1u;
  const uint TS = min(TR, STAGE / DP);
  int col[OPT];
  [[unroll]] for (uint e = 0u; e < OPT; ++e) {
    const uint o = tid + e * WG, d = o % D;
    col[e] = o >= G * D ? -1 : !fitted_mid ? int(d) : vmap[d] >= 0 ? vmap[d] - int(vc0) : -1;
  }
  for (uint j0 = 0u; j0 < rows; j0 += TS) {
    const uint ts = min(TS, rows - j0);
    barrier();  // st is free
    stage(part, r0, j0, ts, DX, DP, false, fitted_mid);
    barrier();
    [[unroll]] for (uint e = 0u; e < OPT; ++e) {
      if (col[e] >= 0) {
        const uint hh = (tid + e * WG) / D, cc = uint(col[e]);
        float a = acc[e];
        for (uint j = 0u; j < ts; ++j) a += pget(j0 + j, hh) * st[j * DP + cc];
        acc[e] = a;
      }
    }
  }
}

void spec_weights(uint r0, uint rows) {
  const uint N = p.n_freq, T = p.period;
  uint nn[NPT];
  vec2 w[NPT], nz[NPT];
  [[unroll]] for (uint e = 0u; e < NPT; ++e) {
    nn[e] = min(tid + e * WG, N - 1u);
    w[e] = basis[nn[e] % T];
    nz[e] = basis[(nn[e] * r0) % T];
  }
  for (uint jb = 0u; jb < rows; jb += 32u) {
    vec2 z[NPT];
    const uint nxt = r0 + min(jb + 32u, rows - 1u);
    [[unroll]] for (uint e = 0u; e < NPT; ++e) {
      z[e] = nz[e];
      nz[e] = basis[(nn[e] * nxt) % T];  // in flight during this block
    }
    const uint cnt = min(32u, rows - jb);
    for (uint s = 0u; s < cnt; ++s) {
      const uint j = jb + s;
      float pr[GP];
      [[unroll]] for (uint v = 0u; v < GP / 4u; ++v) {
        const vec4 pv = p_s[j * (GP / 4u) + v];
        pr[4u * v] = pv.x;
        pr[4u * v + 1u] = pv.y;
        pr[4u * v + 2u] = pv.z;
        pr[4u * v + 3u] = pv.w;
      }
      [[unroll]] for (uint e = 0u; e < NPT; ++e) {
        [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
          hc[hh * NPT + e] += pr[hh] * z[e].x;
          hs[hh * NPT + e] += pr[hh] * z[e].y;
        }
        z[e] = cmul(z[e], w[e]);
      }
    }
  }
}

void build_map(uint qbase, bool is_k) {
  const uint nkv_heads = p.kv_heads;
  const uint nk = is_k ? p.nk_k : p.nk_v;
  for (uint list = 0u; list < 2u; ++list) {
    const uint o = list * (nkv_heads + 1u);
    const uint a = uint(is_k ? kd[o + g] : vd[o + g]), b = uint(is_k ? kd[o + g + 1u] : vd[o + g + 1u]);
    const uint base = 2u * (nkv_heads + 1u) + (list == 0u ? 0u : nk);
    for (uint e = a + tid; e < b; e += WG) {
      const uint d = uint(is_k ? kd[base + e] : vd[base + e]);
      const int code = list == 0u ? int(e) : -1 - int(e);
      if (is_k) {
        kmap[d] = code;
        if (list == 0u)
          [[unroll]] for (uint h = 0u; h < G; ++h) qk_s[h * D + e - a] = q[qbase + h * D + d];
      } else {
        vmap[d] = code;
      }
    }
  }
}

void main() {
  tid = gl_LocalInvocationID.x;
  kept_k_reader_init();
  const uint c = gl_WorkGroupID.x, i = gl_WorkGroupID.z;
  g = gl_WorkGroupID.y;
  const uint N = p.n_freq, GS = 2u * N + 4u;
  const uint head0 = g * G;
  const uint qbase = (i * p.heads + head0) * D;
  gbase = (i * p.heads + head0) * GS;

  for (uint e = tid; e < G * D; e += WG) q_s[e] = q[qbase + e];
  kc0 = 0u;
  nkg = 0u;
  vc0 = 0u;
  nkv = 0u;
  if (p.middle_len > 0u) {
    kc0 = uint(kd[g]);
    nkg = uint(kd[g + 1u]) - kc0;
    vc0 = uint(vd[g]);
    nkv = uint(vd[g + 1u]) - vc0;
    build_map(qbase, true);
    build_map(qbase, false);
  }
  if (tid < G) m_s[tid] = kNegBig;
  if (SPEC_K && p.fitted != 0u && N <= NB) load_g(0u, N);  // once for the whole dispatch
  barrier();

  l_own = 0.0;
  [[unroll]] for (uint e = 0u; e < OPT; ++e) acc[e] = 0.0;
  [[unroll]] for (uint e = 0u; e < G * NPT; ++e) {
    hc[e] = 0.0;
    hs[e] = 0.0;
  }

  const uint before = p.sink_len + p.middle_len + p.win_len;
  const uint len = before + i + 1u;
  const uint start = c * p.chunk_len, end = min(start + p.chunk_len, len);

  for (uint part = 0u; part < 4u; ++part) {
    const uint lo = part == 0u ? 0u : part == 1u ? p.sink_len : part == 2u ? p.sink_len + p.middle_len : before;
    const uint hi = part == 0u ? p.sink_len : part == 1u ? p.sink_len + p.middle_len : part == 2u ? before : len;
    const uint a = max(start, lo), b = min(end, hi);
    const bool spectral = part == 1u && p.fitted != 0u;
    for (uint t0 = a; t0 < b; t0 += TR) {
      const uint rows = min(TR, b - t0), r0 = t0 - lo;
      k_exact(part, r0, rows, spectral);
      if (SPEC_K && spectral) spec_scores(r0, rows);
      softmax(rows);
      v_exact(part, r0, rows, spectral);
      if (SPEC_V && spectral) spec_weights(r0, rows);
      barrier();  // p_s, st and red are rewritten by the next tile
    }
  }

  const uint h = tid / TPH;
  red[tid] = h < G ? l_own : 0.0;
  barrier();
  if (tid < G) {
    float l = 0.0;
    for (uint e = 0u; e < TPH; ++e) l += red[tid * TPH + e];
    const uint base = ((i * p.heads + head0 + tid) * p.chunks + c) * PS;
    part[base] = m_s[tid];
    part[base + 1u] = l;
  }
  [[unroll]] for (uint e = 0u; e < OPT; ++e) {
    const uint o = tid + e * WG;
    if (o < G * D) part[((i * p.heads + head0 + o / D) * p.chunks + c) * PS + 2u + o % D] = acc[e];
  }
  if (SPEC_V)
    [[unroll]] for (uint hh = 0u; hh < G; ++hh) {
      const uint base = ((i * p.heads + head0 + hh) * p.chunks + c) * PS + 2u + D;
      [[unroll]] for (uint e = 0u; e < NPT; ++e) {
        const uint n = tid + e * WG;
        if (n < N) {
          part[base + n] = hc[hh * NPT + e];
          part[base + NF + n] = hs[hh * NPT + e];
        }
      }
    }
}
