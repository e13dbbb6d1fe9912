#version 450
// Decode middle pass, step 1 (docs/VULKAN.md "Split KV cache"): the scores of a fitted middle for every
// query head of the call at once, written scaled into scores[qh][m] (qh = query·heads + head, [n·H, M]).
//   score(qh, m) = scale · (q_keep · k_keep,m + Σ_n g_c[qh][n] cos(2π n m/T) + g_s[qh][n] sin(2π n m/T) + cst[qh])
// with g and cst from split_attention_prep.comp. The basis does not depend on the head, so the spectral part
// is a dense product [heads × 2N] · [2N × rows]: workgroup = a tile of TR rows × a block of HB heads (y), the
// frequencies in blocks of NBF staged in shared memory (g of the block's heads, and the basis from the
// exact table basis[(n·m) % T], the index advanced incrementally per row), each invocation holding 4 heads ×
// 4 consecutive rows. Invocations of one subgroup share their heads (rows vary fastest), so the g loads are
// broadcasts. The kept K dims' exact dot product is done by blocks of their own (z >= 1, one per KV group
// of the head block) into a second scratch ksc (split_middle_values.comp adds the two), per column chunk of
// KC: the tile's kept values staged by coalesced loads, then (head, row) pairs per invocation.
// No subgroup operation; shared memory ~25 KiB.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HB = 32u;  // heads per workgroup, a power of two from 4 to 32; WG = 16 · HB/4
layout(constant_id = 2) const uint D = 128u;  // head_dim
layout(constant_id = 3) const uint G = 4u;    // query heads per KV head
layout(constant_id = 4) const bool KV_F16 = true;
layout(constant_id = 5) const bool SPEC_K = true;  // K has compressed dims (else only the kept dot)

layout(std430, binding = 0) readonly buffer Q { float q[]; };        // [n, heads, D]
layout(std430, binding = 1) readonly buffer KK { uint kk[]; };       // kept K words by columns, typed
layout(std430, binding = 2) readonly buffer KD { int kd[]; };        // K dims table
layout(std430, binding = 3) readonly buffer GV { float gv[]; };      // [n·heads, 2N + 4]
layout(std430, binding = 4) readonly buffer Table { vec2 basis[]; };  // [T] (cos, sin)
layout(std430, binding = 5) writeonly buffer Scores { float sco[]; };  // [n·heads, M]: spectral part + cst
layout(std430, binding = 6) writeonly buffer KScores { float ksc[]; };  // [n·heads, M]: kept dims' part

layout(push_constant) uniform Params {
  uint count;  // n · heads
  uint heads;
  uint kv_heads;
  uint middle_len;
  uint period;
  uint n_freq;
  uint nk_k;
  float scale;
} p;

const uint TR = 64u;             // rows per tile
const uint WG = 4u * HB;         // (TR/4 row groups) × (HB/4 head groups)
const uint RQ = TR / 4u;         // row groups
const uint NBF = 16u;            // frequencies per staged block
const uint E = NBF * TR / WG;    // basis entries staged per invocation and block
const uint EG = NBF * HB / WG;  // g pairs staged per invocation and block (4)
const uint RS = 8u;              // blocks per reseed of the rotated basis from the exact table
const uint KC = 31u;             // kept columns per staged chunk (odd row stride)
const uint KP = ((G < HB ? G : HB) * TR + WG - 1u) / WG;  // kept-dot (head, row) pairs per invocation

shared vec4 bs[NBF * TR / 2u];   // [f][row pair]: cos, sin of rows 2j, 2j+1; also the kept stage (floats)
shared vec4 gs[NBF * HB / 2u];   // [f][head pair]: g_c, g_s of heads 2j, 2j+1
shared float qk_s[HB * KC];      // q at the chunk's kept dims, per head of the group

#include "common/kept_k_layout.glsl"

KEPT_K_READER(kk)  // kk_at(r, e): K is stored by columns (common/kept_k_layout.glsl)

float st_get(uint i) { return bs[i >> 2][i & 3u]; }
void st_set(uint i, float v) { bs[i >> 2][i & 3u] = v; }

void main() {
  const uint tid = gl_LocalInvocationID.x;
  kept_k_reader_init();
  const uint M = p.middle_len, T = p.period, N = p.n_freq, GS = 2u * N + 4u;
  const uint m0 = gl_WorkGroupID.x * TR, qh0 = gl_WorkGroupID.y * HB;
  const uint rows = min(TR, M - m0);
  const uint qh_end = min(qh0 + HB, p.count);

  // 1. Kept K dims, exact: blocks z >= 1, one per KV group touched by the block's heads (qh / G runs over
  // (query, KV head)), into ksc; they run beside the spectral blocks (z = 0) instead of before them in
  // every workgroup, one group after another.
  if (gl_WorkGroupID.z > 0u) {
    const uint gi = qh0 / G + gl_WorkGroupID.z - 1u;
    if (gi * G >= qh_end) return;  // uniform
    const uint keep_list = 2u * (p.kv_heads + 1u);
    const uint kv = gi % p.kv_heads;
    const uint c0 = uint(kd[kv]), nkg = uint(kd[kv + 1u]) - c0;
    const uint ha = max(qh0, gi * G), hb = min(qh_end, gi * G + G), gk = hb - ha;
    float s[KP];  // (head, row) pairs x = tid + k·WG
    [[unroll]] for (uint k = 0u; k < KP; ++k) s[k] = 0.0;
    for (uint e0 = 0u; e0 < nkg; e0 += KC) {
      const uint kc = min(KC, nkg - e0);
      barrier();  // the stage is free
      for (uint x = tid; x < rows * KC; x += WG) {
        const uint r = x / KC, e = x % KC;  // a constant divisor
        if (e < kc) st_set(x, kk_at(m0 + r, c0 + e0 + e));
      }
      for (uint x = tid; x < gk * KC; x += WG) {
        const uint hl = x / KC, e = x % KC;
        if (e < kc) qk_s[x] = q[(ha + hl) * D + uint(kd[keep_list + c0 + e0 + e])];
      }
      barrier();
      [[unroll]] for (uint k = 0u; k < KP; ++k) {
        const uint x = tid + k * WG, hl = x / TR, r = x % TR;
        if (hl < gk && r < rows) {
          float a = 0.0;
          for (uint e = 0u; e < kc; ++e) a += qk_s[hl * KC + e] * st_get(r * KC + e);
          s[k] += a;
        }
      }
    }
    [[unroll]] for (uint k = 0u; k < KP; ++k) {
      const uint x = tid + k * WG, hl = x / TR, r = x % TR;
      if (hl < gk && r < rows) ksc[(ha + hl) * M + m0 + r] = s[k] * p.scale;
    }
    return;
  }

  // 2. Spectral part: invocation (head group hq, row group rq) holds heads 4hq.., rows 4rq..
  const uint hq = tid / RQ, rq = tid % RQ;
  float acc[16];
  [[unroll]] for (uint e = 0u; e < 16u; ++e) acc[e] = 0.0;
  if (SPEC_K) {
    // Staged basis entries of this invocation: x = tid + j·WG -> (f = x / TR, r = x % TR); index (n·m) % T
    // advanced by NBF·m per block.
    // The next block's basis values and g are formed before the current block is used (registers): the
    // basis by one complex rotation (by 2π NBF m/T) per block, reseeded from the exact table every RS
    // blocks (the table load issued a block ahead), so no block waits on a load.
    uint idx[E], step[E];
    vec2 bnx[E], rot[E], gnx[EG];
    [[unroll]] for (uint j = 0u; j < E; ++j) {
      const uint x = tid + j * WG, m = min(m0 + x % TR, M - 1u);
      idx[j] = ((x / TR) * m) % T;
      step[j] = (NBF * m) % T;
      bnx[j] = basis[idx[j]];
      rot[j] = basis[step[j]];
    }
    [[unroll]] for (uint j = 0u; j < EG; ++j) {
      const uint x = tid + j * WG, f = x % NBF, qh = qh0 + x / NBF, a = qh * GS + f;
      gnx[j] = qh < p.count && f < N ? vec2(gv[a], gv[a + N]) : vec2(0.0);
    }
    for (uint n0 = 0u, blk = 1u; n0 < N; n0 += NBF, ++blk) {
      const uint nb = min(NBF, N - n0);
      barrier();  // the previous block (or the kept stage) is consumed
      [[unroll]] for (uint j = 0u; j < E; ++j) {
        const uint x = tid + j * WG, f = x / TR, r = x % TR;
        bs[(f * TR + r) >> 1][(r & 1u) * 2u] = bnx[j].x;
        bs[(f * TR + r) >> 1][(r & 1u) * 2u + 1u] = bnx[j].y;
      }
      [[unroll]] for (uint j = 0u; j < EG; ++j) {
        const uint x = tid + j * WG, f = x % NBF, hl = x / NBF;
        gs[(f * HB + hl) >> 1][(hl & 1u) * 2u] = gnx[j].x;
        gs[(f * HB + hl) >> 1][(hl & 1u) * 2u + 1u] = gnx[j].y;
      }
      barrier();
      [[unroll]] for (uint j = 0u; j < EG; ++j) {
        const uint x = tid + j * WG, f = x % NBF, qh = qh0 + x / NBF, a = qh * GS + n0 + NBF + f;
        gnx[j] = qh < p.count && n0 + NBF + f < N ? vec2(gv[a], gv[a + N]) : vec2(0.0);
      }
      [[unroll]] for (uint j = 0u; j < E; ++j) {
        idx[j] += step[j];
        if (idx[j] >= T) idx[j] -= T;
      }
      if (blk % RS == 0u) {  // uniform branch: only these blocks touch the table
        [[unroll]] for (uint j = 0u; j < E; ++j) bnx[j] = basis[idx[j]];
      } else {
        [[unroll]] for (uint j = 0u; j < E; ++j) {
          const vec2 b = bnx[j], w = rot[j];
          bnx[j] = vec2(b.x * w.x - b.y * w.y, b.y * w.x + b.x * w.y);
        }
      }
      for (uint f = 0u; f < nb; ++f) {
        const vec4 b01 = bs[(f * TR) / 2u + 2u * rq], b23 = bs[(f * TR) / 2u + 2u * rq + 1u];
        const vec4 g01 = gs[(f * HB) / 2u + 2u * hq], g23 = gs[(f * HB) / 2u + 2u * hq + 1u];
        const vec2 gh[4] = vec2[4](g01.xy, g01.zw, g23.xy, g23.zw);
        const vec2 br[4] = vec2[4](b01.xy, b01.zw, b23.xy, b23.zw);
        [[unroll]] for (uint j = 0u; j < 4u; ++j)
          [[unroll]] for (uint k = 0u; k < 4u; ++k) acc[j * 4u + k] += gh[j].x * br[k].x + gh[j].y * br[k].y;
      }
    }
  }
  [[unroll]] for (uint j = 0u; j < 4u; ++j) {
    const uint hl = 4u * hq + j, qh = qh0 + hl;
    if (qh >= p.count) continue;
    const float cst = SPEC_K ? gv[qh * GS + 2u * N] : 0.0;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
      const uint r = 4u * rq + k;
      if (r < rows) sco[qh * M + m0 + r] = (acc[j * 4u + k] + cst) * p.scale;
    }
  }
}
