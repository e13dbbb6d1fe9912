#version 450
// Decode middle pass, step 2: softmax partials of a fitted middle from the scores of
// split_middle_scores.comp. Workgroup (range x of R rows, block y of HB heads, block z): per head the local
// max mx over the range's rows, P = exp(score − mx), l = Σ P, and for frequency block z < ZS (FB frequencies)
// h_c[n] = Σ_m P cos(2π n m/T), h_s likewise: a product [heads × rows] · [rows × 2FB] with the basis tile
// (exact table, index advanced incrementally per frequency) in shared memory for all heads. Invocation (head
// group hq, frequency group fq) holds 4 heads × 4 frequencies; frequencies vary fastest, so the P loads are
// broadcasts. Every block of a range computes the same mx (a max is exact in any order), so the blocks
// agree; block 0 writes m and l, every frequency block its h. The kept V dims are done by the blocks
// z >= ZS in kept(): block ZS + k takes KV group k of the head block (G heads sharing one KV head: acc[d] =
// Σ P v_d at its kept dims d, zeros at its compressed dims), staging the tile's kept V rows [TR × nk] with
// coalesced loads issued one tile ahead. The partials are split_attention.comp's format (m, l, acc[D],
// h_c[NF], h_s[NF] per (query head, chunk)), at chunk slot x of the middle's own partials buffer, which
// split_merge_sum.comp reads after split_attention.comp's.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HB = 32u;  // heads per workgroup, a power of two from 4 to 32
layout(constant_id = 2) const uint D = 128u;
layout(constant_id = 3) const uint G = 4u;
layout(constant_id = 4) const bool KV_F16 = true;
layout(constant_id = 5) const bool SPEC_V = true;  // V has compressed dims: h is carried
layout(constant_id = 6) const uint NF = 1u;        // N when SPEC_V, else 1 (partial stride)
layout(constant_id = 7) const uint FB = 64u;       // frequencies per workgroup, 16, 32 or 64; WG = HB·FB/16
layout(constant_id = 8) const bool KEPT_K = true;  // K has kept dims: their part of the scores is in ksc

layout(std430, binding = 0) readonly buffer Scores { float sco[]; };  // [n·heads, M], scaled
layout(std430, binding = 1) readonly buffer VK { uint vk[]; };        // kept V rows [T, nk_v], typed
layout(std430, binding = 2) readonly buffer VD { int vd[]; };         // V dims table
layout(std430, binding = 3) readonly buffer Table { vec2 basis[]; };
layout(std430, binding = 4) writeonly buffer Partial { float part[]; };
layout(std430, binding = 5) readonly buffer KScores { float ksc[]; };  // kept K dims' part (KEPT_K)

layout(push_constant) uniform Params {
  uint count;  // n · heads
  uint heads;
  uint kv_heads;
  uint middle_len;
  uint period;
  uint n_freq;
  uint nk_v;
  uint range;   // R, rows per workgroup (a multiple of TR)
  uint chunks;  // chunk slots per (query, head) in the partials
} p;

#include "common/grid.glsl"

// Scaled score of entry i: split_middle_scores.comp's spectral part and its kept blocks' part.
float score(uint i) { return KEPT_K ? sco[i] + ksc[i] : sco[i]; }

const uint TR = 16u;            // rows per tile
const uint RS = 8u;             // tiles per reseed of the rotated basis from the exact table
const uint WG = HB * FB / 16u;  // (HB/4 head groups) × (FB/4 frequency groups)
const uint FQ = FB / 4u;
const uint E = TR * FB / WG;    // basis entries staged per invocation and tile
const uint E2 = HB * TR / WG;   // scores handled per invocation and tile
const uint KP = 4u;                               // kept (head, dim) pairs per invocation and pass
const uint EV = (TR * D + WG - 1u) / WG;          // kept V values staged per invocation and tile
const uint PS = D + 2u + (SPEC_V ? 2u * NF : 0u);
const uint PH = HB + 4u;        // P row stride (whole vec4s, fewer bank conflicts)

shared vec4 bs[TR * FB / 2u];   // [row][freq pair]: cos, sin of frequencies 2j, 2j+1
shared vec4 p_s[TR * PH / 4u];  // [row][head]: P
shared float red[HB * TR];
shared float mx_s[HB];
shared float vs[TR * D];        // kept(): the tile's kept V rows [TR][nk]
shared float pk_s[TR * 8u];     // kept(): P [row][head of the group]
shared float mk_s[128u];        // kept(): partial maxima [lane][head]
shared float mxk_s[8u];         // kept(): the range's max per head of the group

float vk_at(uint e) {
  if (KV_F16) {
    const vec2 v = unpackHalf2x16(vk[e >> 1]);
    return (e & 1u) == 0u ? v.x : v.y;
  }
  return uintBitsToFloat(vk[e]);
}

// Kept V dims of one KV group (the heads ha..hb-1 of the head block that share KV head kv), rows r0..r1-1.
void kept(uint tid, uint r0, uint r1, uint qh0, uint qh_end, uint k) {
  const uint M = p.middle_len, gi = qh0 / G + k;
  if (gi * G >= qh_end) return;  // whole workgroup: no group left in this head block
  const uint kv = gi % p.kv_heads, ha = max(qh0, gi * G), gk = min(qh_end, gi * G + G) - ha;
  const uint c0 = uint(vd[kv]), nk = uint(vd[kv + 1u]) - c0;
  // The range's max per head (the same value as the frequency blocks': a max is exact in any order):
  // slot x = tid + j·WG -> (head x % 8, lane x / 8), lanes stride the rows.
  for (uint x = tid; x < 128u; x += WG) {
    const uint hl = x % 8u;
    float t = kNegBig;
    if (hl < gk)
      for (uint m = r0 + x / 8u; m < r1; m += 16u) t = max(t, score((ha + hl) * M + m));
    mk_s[x] = t;
  }
  barrier();
  for (uint hl = tid; hl < 8u; hl += WG) {
    float t = kNegBig;
    for (uint e = 0u; e < 16u; ++e) t = max(t, mk_s[e * 8u + hl]);
    mxk_s[hl] = t;
  }
  barrier();
  const uint pairs = gk * nk, keep_list = 2u * (p.kv_heads + 1u);
  // Passes of WG·KP (head, kept dim) pairs, head-major (neighbouring invocations read neighbouring dims).
  for (uint pb = 0u; pb < pairs; pb += WG * KP) {
    float acc[KP];
    [[unroll]] for (uint e = 0u; e < KP; ++e) acc[e] = 0.0;
    float vr[EV];  // the next tile's kept values, loaded before the current tile is used
    [[unroll]] for (uint j = 0u; j < EV; ++j) {
      const uint x = tid + j * WG, r = x / nk, c = x % nk, m = r0 + r;
      vr[j] = r < TR && m < r1 ? vk_at(m * p.nk_v + c0 + c) : 0.0;
    }
    for (uint t0 = r0; t0 < r1; t0 += TR) {
      barrier();  // vs and pk_s are free
      [[unroll]] for (uint j = 0u; j < EV; ++j) {
        const uint x = tid + j * WG;
        if (x < TR * nk) vs[x] = vr[j];
      }
      for (uint x = tid; x < TR * 8u; x += WG) {
        const uint r = x / 8u, hl = x % 8u, m = t0 + r;
        pk_s[x] = hl < gk && m < r1 ? exp(score((ha + hl) * M + m) - mxk_s[hl]) : 0.0;
      }
      barrier();
      [[unroll]] for (uint j = 0u; j < EV; ++j) {
        const uint x = tid + j * WG, r = x / nk, c = x % nk, m = t0 + TR + r;
        vr[j] = r < TR && m < r1 ? vk_at(m * p.nk_v + c0 + c) : 0.0;
      }
      [[unroll]] for (uint e = 0u; e < KP; ++e) {
        const uint x = pb + tid + e * WG;
        if (x < pairs) {
          const uint hl = x / nk, c = x % nk;
          float a = acc[e];
          [[unroll]] for (uint r = 0u; r < TR; ++r) a += pk_s[r * 8u + hl] * vs[r * nk + c];
          acc[e] = a;
        }
      }
    }
    [[unroll]] for (uint e = 0u; e < KP; ++e) {
      const uint x = pb + tid + e * WG;
      if (x < pairs) {
        const uint hl = x / nk, c = x % nk;
        const uint base = ((ha + hl) * p.chunks + gl_WorkGroupID.x) * PS + 2u;
        part[base + uint(vd[keep_list + c0 + c])] = acc[e];
      }
    }
  }
  // Zeros at the group's compressed dims.
  const uint cc0 = uint(vd[p.kv_heads + 1u + kv]), ncc = uint(vd[p.kv_heads + 2u + kv]) - cc0;
  for (uint x = tid; x < gk * ncc; x += WG) {
    const uint hl = x / ncc, cc = x % ncc;
    const uint base = ((ha + hl) * p.chunks + gl_WorkGroupID.x) * PS + 2u;
    part[base + uint(vd[keep_list + p.nk_v + cc0 + cc])] = 0.0;
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint M = p.middle_len, T = p.period, N = p.n_freq;
  const uint r0 = gl_WorkGroupID.x * p.range, r1 = min(r0 + p.range, M);
  const uint qh0 = gl_WorkGroupID.y * HB, fb = gl_WorkGroupID.z;
  const bool first = fb == 0u;
  const uint ZS = SPEC_V ? (p.n_freq + FB - 1u) / FB : 1u;  // frequency blocks; then the kept blocks
  if (fb >= ZS) {
    kept(tid, r0, r1, qh0, min(qh0 + HB, p.count), fb - ZS);
    return;
  }

  // Local max per head: invocation handles (head x / TR, row x % TR) for x = tid + j·WG.
  float mxj[E2];
  [[unroll]] for (uint j = 0u; j < E2; ++j) mxj[j] = kNegBig;
  for (uint t0 = r0; t0 < r1; t0 += TR)
    [[unroll]] for (uint j = 0u; j < E2; ++j) {
      const uint x = tid + j * WG, qh = qh0 + x / TR, m = t0 + x % TR;
      if (qh < p.count && m < r1) mxj[j] = max(mxj[j], score(qh * M + m));
    }
  [[unroll]] for (uint j = 0u; j < E2; ++j) red[tid + j * WG] = mxj[j];
  barrier();
  if (tid < HB) {
    float t = kNegBig;
    for (uint e = 0u; e < TR; ++e) t = max(t, red[tid * TR + e]);
    mx_s[tid] = t;
  }
  barrier();
  float mine[E2], lj[E2];
  [[unroll]] for (uint j = 0u; j < E2; ++j) {
    mine[j] = mx_s[(tid + j * WG) / TR];
    lj[j] = 0.0;
  }

  // h: invocation (hq, fq) holds heads 4hq.., frequencies n = fb·FB + 4fq + k. Staged basis entries:
  // x = tid + j·WG -> (frequency x % FB, row x / FB), index (n·m) % T advanced by TR·n per tile.
  const uint hq = tid / FQ, fq = tid % FQ;
  float hc[16], hs[16];
  [[unroll]] for (uint e = 0u; e < 16u; ++e) {
    hc[e] = 0.0;
    hs[e] = 0.0;
  }
  // The next tile's basis values and scores are formed before the current tile is used (registers), so no
  // tile waits on a load: the basis by one complex rotation (by 2π n TR/T) per tile, reseeded from the
  // exact table every RS tiles (the table load issued a tile ahead).
  uint idx[SPEC_V ? E : 1u], step[SPEC_V ? E : 1u];
  vec2 bnx[SPEC_V ? E : 1u], rot[SPEC_V ? E : 1u];
  if (SPEC_V)
    [[unroll]] for (uint j = 0u; j < E; ++j) {
      const uint x = tid + j * WG, n = min(fb * FB + x % FB, N - 1u);
      idx[j] = ((n * r0) % T + (n * (x / FB)) % T) % T;  // n·r0 < N·T < 2^32 (host checks)
      step[j] = (n * TR) % T;
      bnx[j] = basis[idx[j]];
      rot[j] = basis[step[j]];
    }
  float snx[E2];
  [[unroll]] for (uint j = 0u; j < E2; ++j) {
    const uint x = tid + j * WG, qh = qh0 + x / TR, m = r0 + x % TR;
    snx[j] = qh < p.count && m < r1 ? score(qh * M + m) : kNegBig;
  }

  for (uint t0 = r0, tile = 1u; t0 < r1; t0 += TR, ++tile) {
    barrier();  // p_s and bs are free
    [[unroll]] for (uint j = 0u; j < E2; ++j) {
      const uint x = tid + j * WG, hl = x / TR, r = x % TR;
      const float pr = snx[j] > 0.5 * kNegBig ? exp(snx[j] - mine[j]) : 0.0;
      p_s[(r * PH + hl) >> 2][hl & 3u] = pr;
      lj[j] += pr;
    }
    if (SPEC_V)
      [[unroll]] for (uint j = 0u; j < E; ++j) {
        const uint x = tid + j * WG, f = x % FB, r = x / FB;
        bs[(r * FB + f) >> 1][(f & 1u) * 2u] = bnx[j].x;
        bs[(r * FB + f) >> 1][(f & 1u) * 2u + 1u] = bnx[j].y;
      }
    barrier();
    [[unroll]] for (uint j = 0u; j < E2; ++j) {
      const uint x = tid + j * WG, qh = qh0 + x / TR, m = t0 + TR + x % TR;
      snx[j] = qh < p.count && m < r1 ? score(qh * M + m) : kNegBig;
    }
    if (SPEC_V) {
      [[unroll]] for (uint j = 0u; j < E; ++j) {
        idx[j] += step[j];
        if (idx[j] >= T) idx[j] -= T;
      }
      if (tile % RS == 0u) {  // uniform branch: only these tiles touch the table
        [[unroll]] for (uint j = 0u; j < E; ++j) bnx[j] = basis[idx[j]];
      } else {
        [[unroll]] for (uint j = 0u; j < E; ++j) {
          const vec2 b = bnx[j], w = rot[j];
          bnx[j] = vec2(b.x * w.x - b.y * w.y, b.y * w.x + b.x * w.y);
        }
      }
    }
    if (SPEC_V)
      for (uint r = 0u; r < TR; ++r) {
        const vec4 pr = p_s[(r * PH) / 4u + hq];
        const vec4 b01 = bs[(r * FB) / 2u + 2u * fq], b23 = bs[(r * FB) / 2u + 2u * fq + 1u];
        const vec2 bf[4] = vec2[4](b01.xy, b01.zw, b23.xy, b23.zw);
        [[unroll]] for (uint j = 0u; j < 4u; ++j)
          [[unroll]] for (uint k = 0u; k < 4u; ++k) {
            hc[j * 4u + k] += pr[j] * bf[k].x;
            hs[j * 4u + k] += pr[j] * bf[k].y;
          }
      }
  }

  // Write the partials of chunk slot x.
  const uint c = gl_WorkGroupID.x;
  if (first) {
    barrier();
    [[unroll]] for (uint j = 0u; j < E2; ++j) red[tid + j * WG] = lj[j];
    barrier();
    if (tid < HB && qh0 + tid < p.count) {
      float l = 0.0;
      for (uint e = 0u; e < TR; ++e) l += red[tid * TR + e];
      const uint base = ((qh0 + tid) * p.chunks + c) * PS;
      part[base] = mx_s[tid];
      part[base + 1u] = l;
    }
  }
  if (SPEC_V)
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
      const uint qh = qh0 + 4u * hq + j;
      if (qh >= p.count) continue;
      const uint base = (qh * p.chunks + c) * PS + 2u + D;
      [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint n = fb * FB + 4u * fq + k;
        if (n < N) {
          part[base + n] = hc[j * 4u + k];
          part[base + NF + n] = hs[j * 4u + k];
        }
      }
    }
}
