#version 450
// Causal attention over a full cache, first pass. Workgroup (chunk c, head block b, query i) takes KV head
// kvh = b / (G / HC) and the HC query heads h0 .. h0+HC-1 of its group that read it (GQA: with HC = G the
// cache is read once per KV head, not once per query head), over the chunk's cache rows
// [c * chunk_len, min((c + 1) * chunk_len, pos0 + i + 1)). It writes per head the partial result (max score
// m, sum of exp l, unnormalised output acc) that attention_merge.comp combines with a log-sum-exp. pos0 comes
// from the position register and the chunking from common/attention_chunks.glsl, so that one recorded
// dispatch of `want` chunk workgroups serves every position.
//
// Memory: the cache is read as 16-byte words (uvec4: 8 f16 or 4 f32 values), NS words per KV-head row, and
// neighbouring threads read neighbouring words of a row, so each row is one contiguous, fully used span.
// The chunk is walked in spans of SPAN rows:
//  - K: tiles of TK rows are staged in shared memory (each thread holds LPT words; the next tile's loads are
//    issued before the current tile's dot products, so they are in flight meanwhile). Thread j then dots row
//    j with the HC query vectors (q_s, broadcast reads): the row is read from shared memory once for all
//    heads, and the padded stride (NSP odd) keeps consecutive rows in different banks.
//  - softmax: the span's scores (buf, [HC][SPAN]) get one running max per head (online softmax across
//    spans; each head's thread block reduces its share), then become probabilities in place.
//  - V: read straight from memory, thread (row group rg, word sl) weighs rows rg, rg + RPV, ... (UV rows
//    loaded before they are used) into HC x VW accumulators; the row groups are summed once at the end.
// A span's first UV V rows per thread (RPV * UV rows: one tile) are loaded with its first K tile, and q
// before the position register is read: a chunk of one tile (short contexts, vulkan_attention_plan.cpp)
// waits on memory twice. No subgroup operation is used (any subgroup size works); shared memory stays under
// 27 KiB (the host checks the device limit and falls back to attention_split_rows.comp otherwise).
//
// MERGE_LAST (the default on every device; vulkan_backend.cpp): the log-sum-exp merge runs here instead of in
// attention_merge.comp, which saves a dispatch and its barrier per layer (a decode step is a chain of small
// dependent dispatches, and each costs about 2 us of GPU idle on an H100). A lone chunk (short contexts)
// writes its normalised output straight away. Otherwise each workgroup writes its partials, then counts
// itself in `arrivals` (one counter per query and head block); the workgroup that arrives last reads every
// chunk's partials and writes the output, and sets the counter back to 0 for the next dispatch. The
// partials are `coherent` and fenced (memoryBarrierBuffer) on both sides of the count, so the last
// workgroup sees the others' writes.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;    // equals local_size_x
layout(constant_id = 2) const uint D = 128u;     // head_dim; a multiple of VW, D / VW <= WG, HC * D <= BUF
layout(constant_id = 3) const bool KV_F16 = true;
layout(constant_id = 4) const uint HC = 4u;      // query heads per workgroup, a divisor of the group size
layout(constant_id = 5) const uint TK = 32u;     // rows per K tile
layout(constant_id = 6) const uint SPAN = 512u;  // rows per softmax span: a multiple of TK, HC * SPAN <= BUF
layout(constant_id = 7) const bool MERGE_LAST = false;  // merge here (bindings 5, 6), not in attention_merge

layout(std430, binding = 0) readonly buffer Q { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer K { uvec4 kc[]; };
layout(std430, binding = 2) readonly buffer V { uvec4 vc[]; };
// [n, heads, want, PS]: acc (D floats), m, l, padding (common/attention_chunks.glsl)
layout(std430, binding = 3) coherent buffer Partial { float part[]; };
layout(std430, binding = 3) coherent buffer Partial4 { vec4 part4[]; };  // the same, for the merge
layout(std430, binding = 4) readonly buffer Position { uint pos0; };
layout(std430, binding = 5) buffer Arrivals { uint arrivals[]; };  // [n, head blocks], 0 between dispatches
layout(std430, binding = 6) writeonly buffer Out { float o[]; };   // [n, heads, D]
layout(std430, binding = 6) writeonly buffer Out4 { vec4 o4[]; };

layout(push_constant) uniform Params {
  uint n;  // queries
  uint heads;
  uint kv_heads;
  float scale;
  uint want;       // chunk workgroups dispatched per (query, head block)
  uint min_chunk;  // keys per chunk at least, a multiple of TK
} p;

#include "common/attention_chunks.glsl"
#include "common/grid.glsl"

const uint VW = KV_F16 ? 8u : 4u;              // cache values per 16-byte word
const uint NS = D / VW;                        // words per KV-head row
const uint NSP = NS | 1u;                      // k_s row stride in words: odd, so no bank conflicts
const uint LPT = (TK * NS + WG - 1u) / WG;     // K tile words per thread
const uint RPV = WG / NS;                      // V row groups
const uint UV = 4u;                            // V rows per thread loaded before use
const uint BUF = 2048u;                        // floats of buf
const uint TPH = WG / HC;                      // threads per head in the softmax
const uint OPT = (HC * D + WG - 1u) / WG;      // outputs per thread in the final sum
const uint QPT = (HC * D / 4u + WG - 1u) / WG;  // query vec4s per thread
const uint PS = (D + 5u) & ~3u;                // floats per partial: attention_partial_stride(D)

shared vec4 q_s[HC * D / 4u];
shared uvec4 k_s[TK * NSP];
shared float buf[BUF];  // the span's scores, then probabilities, [HC][SPAN]; at the end row-group outputs
shared float red[WG];
shared float alpha_s[HC];
shared bool last_s;

uint tid;
uint kv_base;  // word offset of this KV head in row 0
uvec4 kr[LPT];

// The K tile of rows t0 .. t0+rows-1 into registers (rows past `rows` read nothing).
void load_k(uint t0, uint rows) {
  [[unroll]] for (uint e = 0u; e < LPT; ++e) {
    const uint idx = tid + e * WG, r = idx / NS, sl = idx % NS;
    kr[e] = uvec4(0u);
    if (r < rows) kr[e] = kc[(t0 + r) * p.kv_heads * NS + kv_base + sl];
  }
}

void store_k() {
  [[unroll]] for (uint e = 0u; e < LPT; ++e) {
    const uint idx = tid + e * WG, r = idx / NS, sl = idx % NS;
    if (r < TK) k_s[r * NSP + sl] = kr[e];
  }
}

// Scores of the staged tile's rows 0 .. rows-1 for the HC heads, into buf at span offset off.
void tile_scores(uint off, uint rows) {
  for (uint j = tid; j < rows; j += WG) {
    float s[HC];
    [[unroll]] for (uint g = 0u; g < HC; ++g) s[g] = 0.0;
    for (uint sl = 0u; sl < NS; ++sl) {
      const uvec4 w = k_s[j * NSP + sl];
      if (KV_F16) {
        const vec4 a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
        const vec4 b = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
        [[unroll]] for (uint g = 0u; g < HC; ++g) {
          const uint o = (g * D) / 4u + 2u * sl;
          s[g] += dot(q_s[o], a) + dot(q_s[o + 1u], b);
        }
      } else {
        const vec4 a = uintBitsToFloat(w);
        [[unroll]] for (uint g = 0u; g < HC; ++g) s[g] += dot(q_s[(g * D) / 4u + sl], a);
      }
    }
    [[unroll]] for (uint g = 0u; g < HC; ++g) buf[g * SPAN + off + j] = s[g];
  }
}

float acc[HC * VW];

void accumulate(uvec4 w, uint j) {
  vec4 a, b;
  if (KV_F16) {
    a = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    b = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
  } else {
    a = uintBitsToFloat(w);
    b = vec4(0.0);
  }
  [[unroll]] for (uint g = 0u; g < HC; ++g) {
    const float pr = buf[g * SPAN + j];
    [[unroll]] for (uint v = 0u; v < 4u; ++v) acc[g * VW + v] += pr * a[v];
    if (KV_F16) {
      [[unroll]] for (uint v = 0u; v < 4u; ++v) acc[g * VW + 4u + v] += pr * b[v];
    }
  }
}

// MERGE_LAST, in the workgroup that arrived last: out = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c
// over the `chunks` partials of heads h0 .. h0+HC-1 of query i (M the largest m_c). Thread (g_own, k_own)
// takes head g_own and the acc vec4s k_own, k_own + TPH, ...; the chunks are read FB at a time, their loads
// issued before any is used, with the running max and sums rescaled once per round (a long context has
// `want` chunks, and a walk that waits on each load made 32K decode 2% slower than the separate merge).
const uint NV = D / 4u;                  // acc vec4s per head (the grouped path has D % 4 == 0)
const uint VPT = (NV + TPH - 1u) / TPH;  // per thread
const uint FB = 8u;                      // chunks per round of loads

void merge_chunks(uint i, uint h0, uint chunks, uint g_own, uint k_own) {
  if (g_own >= HC) return;
  const uint hb = (i * p.heads + h0 + g_own) * p.want * PS;  // a multiple of 4
  float mx = kNegBig, total = 0.0;
  vec4 a[VPT];
  [[unroll]] for (uint j = 0u; j < VPT; ++j) a[j] = vec4(0.0);
  for (uint c0 = 0u; c0 < chunks; c0 += FB) {
    vec2 ml[FB];
    vec4 v[FB * VPT];
    [[unroll]] for (uint f = 0u; f < FB; ++f) {
      const uint b = hb + min(c0 + f, chunks - 1u) * PS;
      ml[f] = vec2(part[b + D], part[b + D + 1u]);
      [[unroll]] for (uint j = 0u; j < VPT; ++j)
        v[f * VPT + j] = part4[b / 4u + min(k_own + j * TPH, NV - 1u)];
    }
    float m_new = mx;
    // Repeats of the last chunk (past `chunks`) change no max and get weight 0 below.
    [[unroll]] for (uint f = 0u; f < FB; ++f) m_new = max(m_new, ml[f].x);
    const float rescale = exp(mx - m_new);
    total *= rescale;
    [[unroll]] for (uint j = 0u; j < VPT; ++j) a[j] *= rescale;
    [[unroll]] for (uint f = 0u; f < FB; ++f) {
      const float w = c0 + f < chunks ? exp(ml[f].x - m_new) : 0.0;
      total += w * ml[f].y;
      [[unroll]] for (uint j = 0u; j < VPT; ++j) a[j] += w * v[f * VPT + j];
    }
    mx = m_new;
  }
  const uint ob = (i * p.heads + h0 + g_own) * NV;
  [[unroll]] for (uint j = 0u; j < VPT; ++j)
    if (k_own + j * TPH < NV) o4[ob + k_own + j * TPH] = a[j] / total;
}

void main() {
  tid = gl_LocalInvocationID.x;
  const uint c = gl_WorkGroupID.x, blk = gl_WorkGroupID.y, i = gl_WorkGroupID.z;
  const uint h0 = blk * HC;
  // The query vectors do not depend on the position register: their loads are issued before it is read,
  // so both are in flight together.
  const uint qb = (i * p.heads + h0) * D / 4u;  // D is a multiple of 4: q rows are whole vec4s
  vec4 qv[QPT];
  [[unroll]] for (uint k = 0u; k < QPT; ++k) {
    const uint e = tid + k * WG;
    qv[k] = e < HC * D / 4u ? q4[qb + e] : vec4(0.0);
  }
  const uint chunk_len = attention_chunk_len(pos0 + p.n, p.want, TK, p.min_chunk);
  if (c >= attention_chunks(pos0 + p.n, chunk_len)) return;  // uniform: the whole workgroup leaves
  const uint group = p.heads / p.kv_heads;
  const uint kvh = (blk * HC) / group;
  kv_base = kvh * NS;
  const uint len = pos0 + i + 1u;
  const uint start = c * chunk_len;
  const uint end = min(start + chunk_len, len);

  [[unroll]] for (uint k = 0u; k < QPT; ++k) {
    const uint e = tid + k * WG;
    if (e < HC * D / 4u) q_s[e] = qv[k] * p.scale;
  }
  // The first barrier of the span loop orders q_s before its use.

  const uint g_own = tid / TPH, k_own = tid % TPH;  // softmax: head and share (g_own < HC)
  const uint sl = tid % NS, rg = tid / NS;          // V pass: word and row group (rg < RPV)
  float m_own = kNegBig, l_own = 0.0;
  [[unroll]] for (uint e = 0u; e < HC * VW; ++e) acc[e] = 0.0;

  for (uint s0 = start; s0 < end; s0 += SPAN) {
    const uint s1 = min(s0 + SPAN, end), cnt = s1 - s0;
    load_k(s0, min(TK, cnt));
    // The span's first UV row groups of V (RPV * UV rows: a whole tile) in the same round of loads: a
    // short chunk (decode at short context: one tile) then waits on memory once after the position.
    uvec4 vw[UV];
    [[unroll]] for (uint u = 0u; u < UV; ++u) {
      const uint r = s0 + rg + u * RPV;
      vw[u] = uvec4(0u);
      if (rg < RPV && r < s1) vw[u] = vc[r * p.kv_heads * NS + kv_base + sl];
    }
    for (uint t0 = s0; t0 < s1; t0 += TK) {
      barrier();  // the previous tile's dot products (and the previous span's V pass) are done with k_s, buf
      store_k();
      barrier();
      if (t0 + TK < s1) load_k(t0 + TK, min(TK, s1 - t0 - TK));  // in flight during the dot products
      tile_scores(t0 - s0, min(TK, s1 - t0));
    }
    barrier();

    float mx = kNegBig;
    if (g_own < HC)
      for (uint j = k_own; j < cnt; j += TPH) mx = max(mx, buf[g_own * SPAN + j]);
    red[tid] = mx;
    barrier();
    float alpha = 1.0;
    if (g_own < HC) {
      float m_new = m_own;
      for (uint k = 0u; k < TPH; ++k) m_new = max(m_new, red[g_own * TPH + k]);
      alpha = exp(m_own - m_new);
      float lsum = 0.0;
      for (uint j = k_own; j < cnt; j += TPH) {
        const float pr = exp(buf[g_own * SPAN + j] - m_new);
        buf[g_own * SPAN + j] = pr;
        lsum += pr;
      }
      l_own = l_own * alpha + lsum;
      m_own = m_new;
      if (k_own == 0u) alpha_s[g_own] = alpha;
    }
    barrier();

    if (rg < RPV) {
      [[unroll]] for (uint g = 0u; g < HC; ++g) {
        const float a = alpha_s[g];
        [[unroll]] for (uint v = 0u; v < VW; ++v) acc[g * VW + v] *= a;
      }
      const uint stride = p.kv_heads * NS;
      [[unroll]] for (uint u = 0u; u < UV; ++u)
        if (s0 + rg + u * RPV < s1) accumulate(vw[u], rg + u * RPV);
      uint r = s0 + rg + UV * RPV;
      for (; r + (UV - 1u) * RPV < s1; r += UV * RPV) {
        uvec4 w[UV];
        [[unroll]] for (uint u = 0u; u < UV; ++u) w[u] = vc[(r + u * RPV) * stride + kv_base + sl];
        [[unroll]] for (uint u = 0u; u < UV; ++u) accumulate(w[u], r + u * RPV - s0);
      }
      for (; r < s1; r += RPV) accumulate(vc[r * stride + kv_base + sl], r - s0);
    }
  }

  // Sum the row groups' accumulators through buf, RB groups at a time.
  barrier();  // the last V pass is done with buf and red
  red[tid] = g_own < HC ? l_own : 0.0;
  const uint HD = HC * D, RB = BUF / HD;
  float outv[OPT];
  [[unroll]] for (uint k = 0u; k < OPT; ++k) outv[k] = 0.0;
  for (uint r0 = 0u; r0 < RPV; r0 += RB) {
    if (rg < RPV && rg >= r0 && rg < r0 + RB) {
      [[unroll]] for (uint g = 0u; g < HC; ++g)
        [[unroll]] for (uint v = 0u; v < VW; ++v) buf[(rg - r0) * HD + g * D + sl * VW + v] = acc[g * VW + v];
    }
    barrier();
    const uint nb = min(RB, RPV - r0);
    [[unroll]] for (uint k = 0u; k < OPT; ++k) {
      const uint e = tid + k * WG;
      if (e < HD)
        for (uint b = 0u; b < nb; ++b) outv[k] += buf[b * HD + e];
    }
    barrier();
  }

  const uint chunks = attention_chunks(pos0 + p.n, chunk_len);
  if (MERGE_LAST && chunks == 1u) {
    // The only chunk: its sums are the result.
    if (g_own < HC && k_own == 0u) {
      float l = 0.0;
      for (uint k = 0u; k < TPH; ++k) l += red[g_own * TPH + k];
      alpha_s[g_own] = l;
    }
    barrier();
    [[unroll]] for (uint k = 0u; k < OPT; ++k) {
      const uint e = tid + k * WG;
      if (e < HD) o[(i * p.heads + h0) * D + e] = outv[k] / alpha_s[e / D];
    }
    return;
  }

  const uint base = ((i * p.heads + h0) * p.want + c) * PS;  // head h0 + g at base + g * want * PS
  if (g_own < HC && k_own == 0u) {
    float l = 0.0;
    for (uint k = 0u; k < TPH; ++k) l += red[g_own * TPH + k];
    part[base + g_own * p.want * PS + D] = m_own;
    part[base + g_own * p.want * PS + D + 1u] = l;
  }
  [[unroll]] for (uint k = 0u; k < OPT; ++k) {
    const uint e = tid + k * WG;
    if (e < HD) part[base + (e / D) * p.want * PS + e % D] = outv[k];
  }
  if (!MERGE_LAST) return;
  memoryBarrierBuffer();  // this workgroup's partials before its arrival
  barrier();
  if (tid == 0u) {
    const uint slot = i * gl_NumWorkGroups.y + blk;
    last_s = atomicAdd(arrivals[slot], 1u) == chunks - 1u;
    if (last_s) arrivals[slot] = 0u;  // every chunk has arrived: ready for the next dispatch
  }
  barrier();
  if (!last_s) return;  // uniform
  memoryBarrierBuffer();  // the other workgroups' partials after their arrivals
  merge_chunks(i, h0, chunks, g_own, k_own);
}
