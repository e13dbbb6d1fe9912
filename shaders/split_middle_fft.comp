#version 450
// Decode middle pass by FFT (FOURIER.md "Spectral"; docs/VULKAN.md "The FFT middle pass"): the softmax partials
// of a fitted middle without evaluating the spectral sums row by row. The period is a multiple of N
// (T = R·N; SplitKvCache rounds T up), so middle row m = v + R·u (column v < R, u < N) gives
//   score part   Σ_n g_c[n] cos(2πnm/T) + g_s[n] sin(2πnm/T) = Re Σ_n Z_v[n] e^{2πi nu/N},
//                Z_v[n] = (g_c[n] − i·g_s[n]) e^{2πi nv/T}
//   V spectrum   h_c[n] + i·h_s[n] = Σ_m P_m e^{2πi nm/T} = Σ_v e^{2πi nv/T} Σ_u P_{v+Ru} e^{2πi nu/N}
// so each column costs two N-point FFTs (per query head pair, below): O(T log N) instead of O(M·N) each way.
// Both transforms are of real data (the scores are the real part; P is real), so two query heads share one
// complex transform: the K side transforms Herm(Z_a) + i·Herm(Z_b) (Herm(Z)[n] = (Z[n] + conj Z[-n]) / 2,
// whose transform is Re of Z's), giving head a's scores in .x and head b's in .y; the V side transforms
// P_a + i·P_b and separates X_a[n] = (Y[n] + conj Y[-n]) / 2, X_b[n] = (Y[n] − conj Y[-n]) / 2i. Half the
// transforms and shared memory of one per head, and the scores and P of a head pair are one vec2.
// Workgroup (x = query·kv_heads + KV head, block y of VB columns) takes the G query heads of one KV head
// (x varies fastest, so the KV heads' workgroups of one column block run together and read whole kept V
// rows between them: the rows are R apart, and one head's segment alone wastes most of each DRAM access;
// K's kept words are stored by columns, so a column's rows are contiguous in each word plane);
// its rows {v + R·u : v0 <= v < v0 + VB, m < M} form one chunk slot of the partials (the merge needs no
// contiguous rows). Steps: Z in bit-reversed order, DIT FFT in shared memory (radix 4, natural order out)
// -> scaled scores with the kept K dims' exact dot (odd workgroups: that dot before Z) and the constant
// -> per-head max, P, l -> the kept V dims' Σ P·v -> DIF FFT of P (radix 4, bit-reversed out) -> h of the
// block's columns. The partials are split_middle_values.comp's format (m, l, acc[D], h_c[N], h_s[N]) in a
// buffer of their own (the sink and window pass runs beside this one), read by split_merge_sum.comp. No
// subgroup operation.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 7) in;
layout(constant_id = 0) const uint LOG_N = 7u;    // N = 2^LOG_N >= 2
layout(constant_id = 1) const uint G = 4u;        // query heads per KV head
layout(constant_id = 2) const uint VB = 8u;       // columns per workgroup, a power of two <= WG / 8
layout(constant_id = 3) const uint D = 128u;      // head_dim <= 256
layout(constant_id = 4) const bool KV_F16 = true;
layout(constant_id = 5) const bool SPEC_K = true;  // K has compressed dims (g from split_attention_prep)
layout(constant_id = 6) const bool SPEC_V = true;  // V has compressed dims: h is carried
layout(constant_id = 7) const uint WG = 256u;     // workgroup size (local_size_x), a power of two >= 64, >= D
layout(constant_id = 8) const uint KL = 16u;      // kept K words in flight per invocation (all its rows)
layout(constant_id = 9) const uint VU = 16u;      // kept V rows in flight per invocation
layout(constant_id = 10) const bool STAGGER = true;  // odd workgroups dot the kept K rows before the FFT

layout(std430, binding = 0) readonly buffer Q { float q[]; };          // [n, heads, D]
// Kept K words by columns (common/kept_k_layout.glsl), read 1, 2 or 4 rows' words at a time.
layout(std430, binding = 1) readonly buffer KK { uint kk[]; };
layout(std430, binding = 1) readonly buffer KK2 { uvec2 kk2[]; };
layout(std430, binding = 1) readonly buffer KK4 { uvec4 kk4[]; };
layout(std430, binding = 2) readonly buffer KD { int kd[]; };          // K dims table
layout(std430, binding = 3) readonly buffer VK { uint vk[]; };         // kept V rows [T, nk_v], typed
layout(std430, binding = 4) readonly buffer VD { int vd[]; };          // V dims table
layout(std430, binding = 5) readonly buffer GV { float gv[]; };        // [n·heads, 2N + 4]
layout(std430, binding = 6) readonly buffer Table { vec2 basis[]; };   // [T] (cos, sin)(2πk/T)
layout(std430, binding = 7) writeonly buffer Partial { float part[]; };
layout(std430, binding = 8) readonly buffer Position { uint pos_reg; };  // the call's first position

layout(push_constant) uniform Params {
  uint heads;
  uint kv_heads;
  uint sink;        // S, W: the middle's length M at the call's first position t (the position register) is
  uint window;      // clamp(t − W − S, 0, T), so that the command is the same at every position (replay)
  uint period;      // T, a multiple of N
  uint nk_k;        // kept K dims of the layer (row length of kk)
  uint nk_v;
  uint chunks;      // chunk slots per (query, head) in the partials: one per column block
  float scale;
} p;

#include "common/grid.glsl"

const uint N = 1u << LOG_N;
const uint PR = VB * N;          // rows (and FFT entries) per head
const uint GP = (G + 1u) / 2u;   // head pairs (an odd G's last pair has no second head)
const uint NB = GP * PR;         // FFT entries of the workgroup: GP·VB transforms of N
const uint PS = D + 2u + (SPEC_V ? 2u * N : 0u);
const uint RL = 16u;             // lanes of the two-level reductions
const uint ZU = 4u;              // Z entries loaded together
const uint HU = VB < 8u ? VB : 8u;  // column twiddles of h loaded together
const uint RPT = (PR + WG - 1u) / WG;  // score rows per invocation
// q sits in qk_s at QP + the element's index in the KV head's kept K segment, zeros around: a kept K word
// may start one element before the segment or end one after it (f16), and those elements add nothing.
const uint QP = 1u;
const uint QS = QP + D + 1u;  // qk_s entries (of QV vec4s each)
// Kept K words in flight per invocation: KW words of each of its RPT rows per round (the pass waits on
// rounds of loads, so each carries many; 8 words a round instead of 32 was 4% slower on the H100).
const uint KW = KL >= RPT ? KL / RPT : 1u;

shared vec2 buf[NB];             // [head pair][column][N]: head 2·pair in .x, 2·pair + 1 in .y
shared vec2 tw[N / 2u];          // e^{2πi k/N}
const uint QV = (G + 3u) / 4u;   // vec4s of q per kept dim: heads 4·j .. 4·j + 3 (zeros past G)
shared vec4 qk_s[QS * QV];       // q at the KV head's kept K dims, at (QP + index)·QV, zeros around
shared float red2[G * RL];
shared float stat_s[2u * G];     // per head: max, then l
shared float red[G * WG];

// Element e of the kept V rows (the kept K rows are read as words in step 2).
float v_at(uint e) {
  const uint w = vk[KV_F16 ? e >> 1 : e];
  if (KV_F16) {
    const vec2 v = unpackHalf2x16(w);
    return (e & 1u) == 0u ? v.x : v.y;
  }
  return uintBitsToFloat(w);
}

vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
vec2 conj2(vec2 a) { return vec2(a.x, -a.y); }
uint bitrev(uint n) { return bitfieldReverse(n) >> (32u - LOG_N); }

// Butterfly b of a stage whose butterflies span 2^(s+1) entries: its two entries and twiddle e^{2πi k/2^(s+1)}.
void butterfly_at(uint b, uint s, out uint i0, out uint i1, out vec2 w) {
  const uint f = b >> (LOG_N - 1u), j = b & (N / 2u - 1u), k = j & ((1u << s) - 1u);
  i0 = (f << LOG_N) + ((j >> s) << (s + 1u)) + k;
  i1 = i0 + (1u << s);
  w = tw[k << (LOG_N - 1u - s)];
}

// Two radix-2 stages fused (radix 4): quad b of the stage pair whose lower stage's butterflies span 2^(t+1)
// entries: its first entry (bits t and t + 1 clear) and k, the index within the lower stage's span. Each
// invocation keeps the quad in registers between the two stages: half the shared-memory round trips and
// barriers of one stage at a time.
uint quad_at(uint b, uint t, out uint k) {
  const uint f = b >> (LOG_N - 2u), j = b & (N / 4u - 1u);
  k = j & ((1u << t) - 1u);
  return (f << LOG_N) + ((j >> t) << (t + 2u)) + k;
}
vec2 twiddle(uint k, uint s) { return tw[k << (LOG_N - 1u - s)]; }  // e^{2πi k/2^(s+1)}

// Σ_n x[n] e^{2πi nu/N} of every transform: bit-reversed input, natural output. Stages s, s + 1 fused.
void fft_dit(uint tid) {
  uint s = 0u;
  for (; s + 1u < LOG_N; s += 2u) {
    for (uint b = tid; b < NB / 4u; b += WG) {
      uint k;
      const uint i0 = quad_at(b, s, k), h = 1u << s;
      const vec2 ws = twiddle(k, s);
      const vec2 x0 = buf[i0], x1 = cmul(buf[i0 + h], ws), x2 = buf[i0 + 2u * h], x3 = cmul(buf[i0 + 3u * h], ws);
      const vec2 y0 = x0 + x1, y1 = x0 - x1, c2 = cmul(x2 + x3, twiddle(k, s + 1u)),
                 c3 = cmul(x2 - x3, twiddle(k + h, s + 1u));
      buf[i0] = y0 + c2;
      buf[i0 + 2u * h] = y0 - c2;
      buf[i0 + h] = y1 + c3;
      buf[i0 + 3u * h] = y1 - c3;
    }
    barrier();
  }
  if (s < LOG_N) {  // an odd count of stages: the last alone
    for (uint b = tid; b < NB / 2u; b += WG) {
      uint i0, i1;
      vec2 w;
      butterfly_at(b, s, i0, i1, w);
      const vec2 a = buf[i0], c = cmul(buf[i1], w);
      buf[i0] = a + c;
      buf[i1] = a - c;
    }
    barrier();
  }
}

// The same transform with natural input, bit-reversed output: stages s, s - 1 fused, from the top.
void fft_dif(uint tid) {
  uint s = LOG_N;  // stages below s remain
  for (; s >= 2u; s -= 2u) {
    const uint t = s - 2u;  // the pair's lower stage; its upper is t + 1
    for (uint b = tid; b < NB / 4u; b += WG) {
      uint k;
      const uint i0 = quad_at(b, t, k), h = 1u << t;
      const vec2 x0 = buf[i0], x1 = buf[i0 + h], x2 = buf[i0 + 2u * h], x3 = buf[i0 + 3u * h];
      const vec2 a0 = x0 + x2, a2 = cmul(x0 - x2, twiddle(k, t + 1u));
      const vec2 a1 = x1 + x3, a3 = cmul(x1 - x3, twiddle(k + h, t + 1u));
      const vec2 wt = twiddle(k, t);
      buf[i0] = a0 + a1;
      buf[i0 + h] = cmul(a0 - a1, wt);
      buf[i0 + 2u * h] = a2 + a3;
      buf[i0 + 3u * h] = cmul(a2 - a3, wt);
    }
    barrier();
  }
  if (s == 1u) {  // an odd count of stages: stage 0 alone
    for (uint b = tid; b < NB / 2u; b += WG) {
      uint i0, i1;
      vec2 w;
      butterfly_at(b, 0u, i0, i1, w);
      const vec2 a = buf[i0], c = buf[i1];
      buf[i0] = a + c;
      buf[i1] = cmul(a - c, w);
    }
    barrier();
  }
}

// stat_s[off + head] = max (is_max) or sum of red[head][0..WG): RL lanes of WG/RL, then RL.
void reduce_heads(uint tid, uint off, bool is_max) {
  barrier();  // red is written
  for (uint x = tid; x < G * RL; x += WG) {
    const uint hl = x / RL, l0 = (x % RL) * (WG / RL);
    float t = is_max ? kNegBig : 0.0;
    for (uint e = 0u; e < WG / RL; ++e) {
      const float r = red[hl * WG + l0 + e];
      t = is_max ? max(t, r) : t + r;
    }
    red2[x] = t;
  }
  barrier();
  if (tid < G) {
    float t = is_max ? kNegBig : 0.0;
    for (uint e = 0u; e < RL; ++e) t = is_max ? max(t, red2[tid * RL + e]) : t + red2[tid * RL + e];
    stat_s[off + tid] = t;
  }
  barrier();
}

// Step 2's kept K dims: the exact dots of the workgroup's rows r = tid·RPT + k (k < RPT; row r is entry r of
// a head pair's FFT block: column r / N, u = r % N), one read of each kept K word for all G heads. K's kept
// words are stored by columns (common/kept_k_layout.glsl), so an invocation's RPT rows are neighbours in
// every word plane (one 16-byte load at RPT 4) and a subgroup reads whole runs of a plane; each q entry is
// read from shared memory once for the RPT rows. Results go to ks (the G heads' dots, four a vec4) and kok
// (the row is in the middle). Elements outside the segment (another head's, a row's padding half) are
// replaced by zeros, not only weighted by q's zeros: 0 times an Inf or NaN there would spoil the score.
vec4 ks[RPT * QV];
bool kok[RPT];
void kept_k_dots(uint tid, uint v0, uint R, uint M, uint kc0, uint nkk) {
  const uint EW = KV_F16 ? 2u : 1u, T = p.period;
  const uint r0 = tid * RPT, v = v0 + (r0 >> LOG_N), u0 = r0 & (N - 1u);
  const uint base = v * N + u0;  // the first row's word in plane 0 (R = T / N: kept_k_word)
  [[unroll]] for (uint k = 0u; k < RPT; ++k) {
    kok[k] = r0 + k < PR && v < R && v + R * (u0 + k) < M;
    [[unroll]] for (uint j = 0u; j < QV; ++j) ks[k * QV + j] = vec4(0.0);
  }
  const bool any = kok[0];  // rows past the middle's end come after those in it
  const uint w0 = kc0 / EW, w1 = nkk > 0u ? (kc0 + nkk - 1u) / EW + 1u : w0;  // the segment's words
  for (uint wb = w0; wb < w1; wb += KW) {
    uint kx[RPT * KW];  // word j of the round for row k at k·KW + j
    [[unroll]] for (uint j = 0u; j < KW; ++j) {
      const bool ld = any && wb + j < w1;
      const uint at = (wb + j) * T + base;
      if (RPT % 4u == 0u) {
        [[unroll]] for (uint k = 0u; k < RPT; k += 4u) {
          const uvec4 x = ld ? kk4[(at + k) >> 2] : uvec4(0u);
          [[unroll]] for (uint c = 0u; c < 4u; ++c) kx[(k + c) * KW + j] = kok[k + c] ? x[c] : 0u;
        }
      } else if (RPT == 2u) {
        const uvec2 x = ld ? kk2[at >> 1] : uvec2(0u);
        [[unroll]] for (uint k = 0u; k < RPT; ++k) kx[k * KW + j] = kok[k] ? x[k] : 0u;
      } else {
        kx[j] = ld ? kk[at] : 0u;
      }
    }
    [[unroll]] for (uint j = 0u; j < KW; ++j) {
      if (wb + j < w1) {
        const uint e = EW * (wb + j) - kc0;  // the word's first element in the segment (wraps below 0)
        const uint qi = QP + e;
        if (KV_F16) {
          const bool okx = e < nkk, oky = e + 1u < nkk;
          vec4 qa[QV], qb[QV];
          [[unroll]] for (uint h = 0u; h < QV; ++h) {
            qa[h] = qk_s[qi * QV + h];
            qb[h] = qk_s[(qi + 1u) * QV + h];
          }
          [[unroll]] for (uint k = 0u; k < RPT; ++k) {
            const vec2 hv = unpackHalf2x16(kx[k * KW + j]);
            const float hx = okx ? hv.x : 0.0, hy = oky ? hv.y : 0.0;
            [[unroll]] for (uint h = 0u; h < QV; ++h) ks[k * QV + h] += qa[h] * hx + qb[h] * hy;
          }
        } else {
          vec4 qa[QV];
          [[unroll]] for (uint h = 0u; h < QV; ++h) qa[h] = qk_s[qi * QV + h];
          [[unroll]] for (uint k = 0u; k < RPT; ++k) {
            const float x = uintBitsToFloat(kx[k * KW + j]);
            [[unroll]] for (uint h = 0u; h < QV; ++h) ks[k * QV + h] += qa[h] * x;
          }
        }
      }
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint T = p.period, R = T >> LOG_N, GS = 2u * N + 4u;
  const uint M = uint(clamp(int(pos_reg) - int(p.window) - int(p.sink), 0, int(T)));
  const uint v0 = gl_WorkGroupID.y * VB;
  const uint kv = gl_WorkGroupID.x % p.kv_heads, qi = gl_WorkGroupID.x / p.kv_heads;
  const uint qh0 = qi * p.heads + kv * G;  // the group's first query head (query-major, like q)
  const uint keep_list = 2u * (p.kv_heads + 1u);
  const uint kc0 = uint(kd[kv]), nkk = uint(kd[kv + 1u]) - kc0;
  const uint vc0 = uint(vd[kv]), nkv = uint(vd[kv + 1u]) - vc0;
  const uint slot = gl_WorkGroupID.y;

  for (uint k = tid; k < N / 2u; k += WG) tw[k] = basis[k * R];
  for (uint x = tid; x < QS * QV; x += WG) {
    const uint i = x / QV, h0 = 4u * (x % QV);
    vec4 qv = vec4(0.0);
    if (i >= QP && i < QP + nkk) {
      const uint d = uint(kd[keep_list + kc0 + i - QP]);
      [[unroll]] for (uint e = 0u; e < 4u; ++e)
        if (h0 + e < G) qv[e] = q[(qh0 + h0 + e) * D + d];
    }
    qk_s[x] = qv;
  }

  // Half the workgroups (odd linear index) read their kept K rows before step 1, the others after its
  // FFT: workgroups that run side by side then load while their neighbours compute, instead of all of
  // them waiting on memory at once (docs/VULKAN.md "Staggered kept K dots").
  const bool kept_first = STAGGER && ((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) & 1u) == 1u;
  if (kept_first) {  // uniform over the workgroup
    barrier();       // qk_s is written
    kept_k_dots(tid, v0, R, M, kc0, nkk);
  }

  // 1. The compressed K dims' score part: Herm(Z_a) + i·Herm(Z_b) of each head pair and column in
  // bit-reversed order, then the inverse-direction FFT. Herm(Z)[-n] = conj Herm(Z)[n], so one item makes
  // entries n and N - n (n <= N/2) from the same loads. Loads are issued ZU items at a time (independent, in
  // flight together: the pass is latency-bound otherwise).
  if (SPEC_K) {
    const uint NH = N / 2u + 1u, NI = (NB >> LOG_N) * NH;  // items per transform, in all
    for (uint x0 = tid; x0 < NI; x0 += ZU * WG) {
      vec2 za[ZU], zam[ZU], zb[ZU], zbm[ZU], b[ZU], bm[ZU];
      [[unroll]] for (uint j = 0u; j < ZU; ++j) {
        const uint x = min(x0 + j * WG, NI - 1u), f = x / NH, n = x % NH, nm = (N - n) & (N - 1u);
        const uint hp = f / VB, v = min(v0 + f % VB, R - 1u);
        const uint a = (qh0 + 2u * hp) * GS, bh = 2u * hp + 1u < G ? a + GS : a;
        za[j] = vec2(gv[a + n], -gv[a + N + n]);
        zam[j] = vec2(gv[a + nm], -gv[a + N + nm]);
        zb[j] = vec2(gv[bh + n], -gv[bh + N + n]);
        zbm[j] = vec2(gv[bh + nm], -gv[bh + N + nm]);
        b[j] = basis[n * v];
        bm[j] = basis[nm * v];
      }
      [[unroll]] for (uint j = 0u; j < ZU; ++j) {
        const uint x = x0 + j * WG, f = x / NH, n = x % NH, nm = (N - n) & (N - 1u);
        if (x < NI) {
          // Herm(Z)[n] = (Z[n] + conj Z[-n]) / 2; W[n] = Herm(Z_a)[n] + i·Herm(Z_b)[n],
          // W[-n] = conj Herm(Z_a)[n] + i·conj Herm(Z_b)[n].
          const bool live = v0 + f % VB < R;
          const vec2 ha = 0.5 * (cmul(za[j], b[j]) + conj2(cmul(zam[j], bm[j])));
          const vec2 hb =
              2u * (f / VB) + 1u < G ? 0.5 * (cmul(zb[j], b[j]) + conj2(cmul(zbm[j], bm[j]))) : vec2(0.0);
          buf[(f << LOG_N) + bitrev(n)] = live ? vec2(ha.x - hb.y, ha.y + hb.x) : vec2(0.0);
          if (nm != n) buf[(f << LOG_N) + bitrev(nm)] = live ? vec2(ha.x + hb.y, hb.x - ha.y) : vec2(0.0);
        }
      }
    }
  }
  barrier();  // buf, tw and qk_s are written
  if (SPEC_K) fft_dit(tid);
  if (!kept_first) kept_k_dots(tid, v0, R, M, kc0, nkk);

  // 2. Scaled scores: the kept K dots (kept_k_dots, before step 1 in staggered workgroups) plus the
  // spectral part and the constant; kNegBig outside the middle.
  {
    [[unroll]] for (uint k = 0u; k < RPT; ++k) {
      const uint r = tid * RPT + k;  // kept_k_dots's rows
      if (r < PR)
        [[unroll]] for (uint hp = 0u; hp < GP; ++hp) {
          const uint i = hp * PR + r;
          const vec2 spec = SPEC_K ? buf[i] : vec2(0.0);
          vec2 sc = vec2(kNegBig);
          [[unroll]] for (uint e = 0u; e < 2u; ++e) {
            const uint hl = 2u * hp + e;
            if (hl < G && kok[k])
              sc[e] = (ks[k * QV + hl / 4u][hl % 4u] +
                       (SPEC_K ? spec[e] + gv[(qh0 + hl) * GS + 2u * N] : 0.0)) * p.scale;
          }
          buf[i] = sc;
        }
    }
  }
  barrier();

  // 3. Per head: the max over the rows, P = exp(score − max) in place, l = Σ P.
  [[unroll]] for (uint hp = 0u; hp < GP; ++hp) {
    vec2 t = vec2(kNegBig);
    for (uint r = tid; r < PR; r += WG) t = max(t, buf[hp * PR + r]);
    red[2u * hp * WG + tid] = t.x;
    if (2u * hp + 1u < G) red[(2u * hp + 1u) * WG + tid] = t.y;
  }
  reduce_heads(tid, 0u, true);
  [[unroll]] for (uint hp = 0u; hp < GP; ++hp) {
    const bool two = 2u * hp + 1u < G;
    const vec2 mx = vec2(stat_s[2u * hp], two ? stat_s[2u * hp + 1u] : 0.0);
    vec2 l = vec2(0.0);
    for (uint r = tid; r < PR; r += WG) {
      const vec2 x = buf[hp * PR + r];
      const vec2 pr =
          vec2(x.x > 0.5 * kNegBig ? exp(x.x - mx.x) : 0.0, x.y > 0.5 * kNegBig ? exp(x.y - mx.y) : 0.0);
      buf[hp * PR + r] = pr;
      l += pr;
    }
    red[2u * hp * WG + tid] = l.x;
    if (two) red[(2u * hp + 1u) * WG + tid] = l.y;
  }
  reduce_heads(tid, G, false);  // also orders the P writes before the reads below

  // 4. Kept V dims: invocation (lane, unit w) sums entries lane, lane + L, ... of buf's column-major order
  // (entry i: column i / N, row u = i % N of it) for all G heads (neighbouring invocations read neighbouring
  // units of one row), VU rows per round, then the lanes are added through red. A unit is one 32-bit word
  // of two f16 dims when every row's segment starts at the same parity (f16, an even row length nk_v): half
  // the loads and P reads of one dim a unit; otherwise one dim. The lanes' sums reach red LR lanes at a time.
  const bool pairs = KV_F16 && (p.nk_v & 1u) == 0u;
  const uint lead = pairs ? vc0 & 1u : 0u;  // the segment's elements before its first whole word
  const uint U = nkv == 0u ? 0u : pairs ? (lead + nkv + 1u) >> 1 : nkv;
  const uint L = U > 0u ? WG / U : 0u, LR = nkv > 0u ? WG / nkv : 0u;  // nkv <= D <= WG
  const uint lane = U > 0u ? tid / U : 0u, w = U > 0u ? tid % U : 0u;
  const uint e0 = pairs ? 2u * w - lead : w;  // the unit's first dim (wraps below 0: not a dim)
  const bool ok0 = e0 < nkv, ok1 = pairs && e0 + 1u < nkv;
  vec2 acc0[GP], acc1[GP];  // dims e0, e0 + 1; heads 2·pair, 2·pair + 1
  [[unroll]] for (uint hp = 0u; hp < GP; ++hp) {
    acc0[hp] = vec2(0.0);
    acc1[hp] = vec2(0.0);
  }
  if (lane < L)
    for (uint r0 = lane; r0 < PR; r0 += VU * L) {
      uint vw[VU];  // the unit's word (pairs) or its value's bits; 0 outside the middle
      [[unroll]] for (uint j = 0u; j < VU; ++j) {
        const uint i = r0 + j * L, v = v0 + (i >> LOG_N), m = v + R * (i & (N - 1u));
        const bool in_mid = i < PR && v < R && m < M;
        if (pairs)
          vw[j] = in_mid ? vk[((m * p.nk_v + vc0 - lead) >> 1) + w] : 0u;
        else
          vw[j] = in_mid && ok0 ? floatBitsToUint(v_at(m * p.nk_v + vc0 + e0)) : 0u;
      }
      [[unroll]] for (uint j = 0u; j < VU; ++j) {
        const uint i = min(r0 + j * L, PR - 1u);
        // Values outside the segment (other heads', or the next row's: unwritten after the middle's last
        // row) are replaced, not weighed by zero: they may hold Inf or NaN.
        vec2 x = pairs ? unpackHalf2x16(vw[j]) : vec2(uintBitsToFloat(vw[j]), 0.0);
        x = vec2(ok0 ? x.x : 0.0, ok1 ? x.y : 0.0);
        [[unroll]] for (uint hp = 0u; hp < GP; ++hp) {
          const vec2 pp = buf[hp * PR + i];
          acc0[hp] += pp * x.x;
          if (pairs) acc1[hp] += pp * x.y;
        }
      }
    }
  for (uint base = 0u; base < L; base += LR) {  // uniform: rounds of LR lanes
    if (lane >= base && lane < base + LR && lane < L) {
      const uint sl = lane - base;
      [[unroll]] for (uint hl = 0u; hl < G; ++hl) {
        if (ok0) {
          const uint o = (sl * G + hl) * nkv + e0;
          red[o] = (base == 0u ? 0.0 : red[o]) + acc0[hl / 2u][hl % 2u];
        }
        if (ok1) {
          const uint o = (sl * G + hl) * nkv + e0 + 1u;
          red[o] = (base == 0u ? 0.0 : red[o]) + acc1[hl / 2u][hl % 2u];
        }
      }
    }
    barrier();
  }
  if (L == 0u) barrier();  // (uniform) the rounds' barrier when there were none
  for (uint x = tid; x < G * nkv; x += WG) {
    const uint hl = x / nkv, c = x % nkv;
    float a = 0.0;
    for (uint l = 0u; l < min(L, LR); ++l) a += red[(l * G + hl) * nkv + c];
    part[((qh0 + hl) * p.chunks + slot) * PS + 2u + uint(vd[keep_list + vc0 + c])] = a;
  }
  const uint cc0 = uint(vd[p.kv_heads + 1u + kv]), ncc = uint(vd[p.kv_heads + 2u + kv]) - cc0;
  for (uint x = tid; x < G * ncc; x += WG) {
    const uint hl = x / ncc, c = x % ncc;
    part[((qh0 + hl) * p.chunks + slot) * PS + 2u + uint(vd[keep_list + p.nk_v + cc0 + c])] = 0.0;
  }
  if (tid < G) {
    const uint base = ((qh0 + tid) * p.chunks + slot) * PS;
    part[base] = stat_s[tid];
    part[base + 1u] = stat_s[G + tid];
  }

  // 5. The V spectrum: FFT of each column's P, twiddled by e^{2πi nv/T} and summed over the block's columns.
  if (SPEC_V) {
    fft_dif(tid);
    // The spectra of heads 2·pair and 2·pair + 1 from the pair's transform Y = X_a + i·X_b (bit-reversed):
    // X_a[n] = (Y[n] + conj Y[-n]) / 2, X_b[n] = (Y[n] − conj Y[-n]) / 2i.
    for (uint x = tid; x < GP * N; x += WG) {
      const uint hp = x / N, n = x % N, nr = bitrev(n), nm = bitrev((N - n) & (N - 1u));
      vec2 ha = vec2(0.0), hb = vec2(0.0);
      // The columns' twiddles e^{2πi nv/T} are loaded HU at a time before any is used (in flight together).
      for (uint vb = 0u; vb < VB; vb += HU) {
        vec2 t[HU];
        [[unroll]] for (uint j = 0u; j < HU; ++j) t[j] = basis[n * min(v0 + vb + j, R - 1u)];
        [[unroll]] for (uint j = 0u; j < HU; ++j) {
          const uint vl = vb + j, o = (hp * VB + vl) * N;
          if (vl < VB && v0 + vl < R) {
            const vec2 y = buf[o + nr], ym = conj2(buf[o + nm]);
            ha += cmul(t[j], 0.5 * (y + ym));
            hb += cmul(t[j], 0.5 * vec2(y.y - ym.y, ym.x - y.x));
          }
        }
      }
      [[unroll]] for (uint e = 0u; e < 2u; ++e) {
        if (2u * hp + e < G) {
          const uint base = ((qh0 + 2u * hp + e) * p.chunks + slot) * PS + 2u + D;
          const vec2 h = e == 0u ? ha : hb;
          part[base + n] = h.x;
          part[base + N + n] = h.y;
        }
      }
    }
  }
}
