// split_attention_prep.comp's work, included by it and by split_prep_window.comp. The includer declares the
// bindings q, coef, norm, dims, gv, the push constants count, heads, kv_heads, head_dim, n_freq, n_keep in
// `p`, PREP_WG (its workgroup size: a multiple of 32 and of 16, at most 256), and includes common/grid.glsl.

float scale_a(uint c) {
  const float rho_rec = norm[c * 8u + 3u];
  return rho_rec > 0.0 ? norm[c * 8u + 1u] / rho_rec : 0.0;
}

// Workgroup (query head x, block y of FB frequencies): q_j·a_j of the head's compressed dims is formed into
// shared memory, then invocation (frequency n, lane) sums its lane's share of the dims (coalesced coef loads,
// DU dims in flight), and the LN lanes are added through shared memory. Block y = 0 also forms the constant
// Σ_j q_j b_j by a parallel reduction. The previous version (one invocation per frequency walking every dim,
// and the constant walked by one invocation) was latency-bound: ~23 us per call at the 8B shape.
const uint FB = 32u;           // frequencies per workgroup
const uint LN = PREP_WG / FB;  // dim lanes
const uint DU = 4u;            // dims per lane in flight
const uint QA = 256u;
shared float qa_s[QA];
shared float rc_s[PREP_WG];
shared float rs_s[PREP_WG];

// Workgroup (query head qh, frequency block yb).
void prep(uint qh, uint yb) {
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint h = qh % p.heads, g = h / (p.heads / p.kv_heads);
  const uint N = p.n_freq, stride = 2u * N + 4u;
  const uint c0 = uint(dims[p.kv_heads + 1u + g]), c1 = uint(dims[p.kv_heads + 1u + g + 1u]);
  const uint comp = 2u * (p.kv_heads + 1u) + p.n_keep;
  const bool first = yb == 0u;
  const uint n = yb * FB + tid % FB, lane = tid / FB, nn = min(n, N - 1u);
  float gc = 0.0, gs = 0.0, cst = 0.0;
  for (uint cb = c0; cb < c1; cb += QA) {
    const uint nb = min(QA, c1 - cb);
    barrier();  // qa_s is free
    for (uint e = tid; e < nb; e += PREP_WG) {
      const uint c = cb + e;
      const float qj = q[qh * p.head_dim + uint(dims[comp + c])], a = scale_a(c);
      qa_s[e] = qj * a;
      if (first) cst += qj * (norm[c * 8u] - a * norm[c * 8u + 2u]);
    }
    barrier();
    for (uint e0 = lane; e0 < nb; e0 += DU * LN) {
      float xc[DU], xs[DU];
      [[unroll]] for (uint j = 0u; j < DU; ++j) {
        const uint e = min(e0 + j * LN, nb - 1u), row = (cb + e) * 2u * N + nn;
        xc[j] = coef[row];
        xs[j] = coef[row + N];
      }
      [[unroll]] for (uint j = 0u; j < DU; ++j) {
        const float w = e0 + j * LN < nb ? qa_s[e0 + j * LN] : 0.0;
        gc += w * xc[j];
        gs += w * xs[j];
      }
    }
  }
  rc_s[tid] = gc;
  rs_s[tid] = gs;
  barrier();
  if (lane == 0u && n < N) {
    float c = 0.0, s = 0.0;
    for (uint l = 0u; l < LN; ++l) {
      c += rc_s[l * FB + tid];
      s += rs_s[l * FB + tid];
    }
    const float w = (n == 0u ? 0.5 : 1.0) / float(N);
    gv[qh * stride + n] = c * w;
    gv[qh * stride + N + n] = s * w;
  }
  if (first) {  // uniform: the constant, PREP_WG partials summed PREP_WG / 16 at a time, then 16
    barrier();
    rc_s[tid] = cst;
    barrier();
    if (tid < 16u) {
      float t = 0.0;
      for (uint e = 0u; e < PREP_WG / 16u; ++e) t += rc_s[tid * (PREP_WG / 16u) + e];
      rs_s[tid] = t;
    }
    barrier();
    if (tid == 0u) {
      float t = 0.0;
      for (uint e = 0u; e < 16u; ++e) t += rs_s[e];
      gv[qh * stride + 2u * N] = t;
    }
  }
}
