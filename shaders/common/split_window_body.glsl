// split_window_decode.comp's work, included by it and by split_prep_window.comp. The includer declares the
// bindings q, ok, ov, ks, kw, vs, vw, part, pos_reg, the push constants heads, kv_heads, scale, chunks,
// window, sink, ring in `p`, the specialization constants D, G, KV_F16, CL, PS, WIN_WG (its workgroup size,
// 128) and includes common/grid.glsl and common/f16_round.glsl.

const uint WIN_WG = 128u;
const uint VPT = KV_F16 ? 8u : 4u;  // values per 16-byte word
const uint TPR = D / VPT;           // words (invocations) per row
const uint RPP = WIN_WG / TPR;      // row slots
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

// Workgroup (chunk c, KV head g).
void window_decode(uint c, uint g) {
  const uint tid = gl_LocalInvocationID.x;
  const uint head0 = g * G;
  const uint u = tid % TPR, rs = tid / TPR;
  list_extent();
  const uint total = sink_len + win_len + 1u;

  for (uint x = tid; x < G * D; x += WIN_WG) q_s[x] = q[head0 * D + x] * p.scale;
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
    for (uint r = tid; r < CL; r += WIN_WG) {
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
  for (uint x = tid; x < G * CL; x += WIN_WG) {
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
    for (uint d = tid; d < D; d += WIN_WG) {
      float a = 0.0;
      for (uint s = 0u; s < RPP; ++s) a += red[s * D + d];
      part[((head0 + h) * p.chunks + c) * PS + 2u + d] = a;
    }
    barrier();  // red is rewritten by the next head
  }
}
