#version 450
// Range normalisation over middle positions 0 .. M-1 (split_kv_layer.h; CPU: refit() in split_kv_kernels.cpp).
//  mode 0: workgroup (block b, dim j) reconstructs x̃_j(p) for the block's positions from the coefficients
//          (x̃ = (1/N) Σ_n w_n (C cos + S sin), w_0 = 1/2) and writes the block's min, max, and the sum and
//          sum of squares of x̃ - s_b, s_b its first value (shifted, so that a dim far from zero loses no
//          digits: the least-squares fit needs its variance);
//  mode 2: the same reconstruction, written out range normalised (x̂ = a·x̃ + b) as rows [M, n_comp] into
//          binding 2: split attention's rebuilt middle for prefill chunks;
//  mode 1: one invocation per dim adds the blocks in order and writes μ, ρ (from the running statistics),
//          μ̃, ρ̃ (max |x̃ - μ̃| = max(max - μ̃, μ̃ - min)), or the least-squares scale as ρ = a·ρ̃. The sums
//          whose difference makes the covariance (Σ x·x̃ by Parseval, and μ·μ̃) are kept as float pairs
//          (hi + lo): the CPU does them in double.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;  // equals local_size_x, a power of two

layout(std430, binding = 0) readonly buffer Coef { float coef[]; };  // [n_comp, 2N]
layout(std430, binding = 1) readonly buffer Table { vec2 basis[]; };
layout(std430, binding = 2) buffer Partial { float part[]; };        // [n_comp, blocks, 8]
layout(std430, binding = 3) buffer Norm { float norm[]; };           // [n_comp, 8]

layout(push_constant) uniform Params {
  uint rows;  // M
  uint n_comp;
  uint n_freq;
  uint period;
  uint blocks;
  uint mode;
  uint least_squares;
} p;

shared float cs[1024];  // the dim's coefficients, a slice of up to 512 frequencies at a time
shared float r_sum[WG], r_min[WG], r_max[WG], r_sq[WG];
shared float shift_s;

// Float pairs (hi + lo, |lo| <= ulp(hi)/2): error-free sums and products.
vec2 two_sum(float a, float b) {
  precise float s = a + b;
  precise float bb = s - a;
  precise float e = (a - (s - bb)) + (b - bb);
  return vec2(s, e);
}
vec2 quick_two_sum(float a, float b) {
  precise float s = a + b;
  precise float e = b - (s - a);
  return vec2(s, e);
}
vec2 two_prod(float a, float b) {
  precise float p = a * b;
  precise float e = fma(a, b, -p);
  return vec2(p, e);
}
vec2 df_add(vec2 a, vec2 b) {
  const vec2 s = two_sum(a.x, b.x);
  precise float e = s.y + (a.y + b.y);
  return quick_two_sum(s.x, e);
}
vec2 df_div(vec2 a, float b) {
  precise float q1 = a.x / b;
  const vec2 r = df_add(a, -two_prod(q1, b));
  precise float q2 = r.x / b;
  return quick_two_sum(q1, q2);
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint N = p.n_freq;
  if (p.mode != 1u) {
    const uint b = gl_WorkGroupID.x, j = gl_WorkGroupID.y;
    const uint pos = b * WG + tid;
    const bool live = pos < p.rows;
    const uint step = pos % p.period;
    // Eight running sums per dot product, combined like the CPU's dot() (fourier_transform.cpp), and the
    // same final expression: x̃ is the CPU's value bit for bit where the device rounds like the host.
    precise float lc[8], ls[8];
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
      lc[k] = 0.0;
      ls[k] = 0.0;
    }
    precise float tail_c = 0.0, tail_s = 0.0;
    const uint n_main = N / 8u * 8u;
    for (uint n0 = 0u; n0 < N; n0 += 512u) {
      const uint cnt = min(512u, N - n0);
      barrier();
      for (uint k = tid; k < cnt; k += WG) {
        cs[k] = coef[j * 2u * N + n0 + k];
        cs[512u + k] = coef[j * 2u * N + N + n0 + k];
      }
      barrier();
      uint idx = (n0 * step) % p.period;
      for (uint k = 0u; k < cnt; ++k) {
        const vec2 e = basis[idx];
        precise float tc = cs[k] * e.x;
        precise float ts = cs[512u + k] * e.y;
        if (n0 + k < n_main) {
          lc[k & 7u] += tc;
          ls[k & 7u] += ts;
        } else {
          tail_c += tc;
          tail_s += ts;
        }
        idx += step;
        if (idx >= p.period) idx -= p.period;
      }
    }
    precise float dot_c = ((lc[0] + lc[4]) + (lc[1] + lc[5])) + ((lc[2] + lc[6]) + (lc[3] + lc[7])) + tail_c;
    precise float dot_s = ((ls[0] + ls[4]) + (ls[1] + ls[5])) + ((ls[2] + ls[6]) + (ls[3] + ls[7])) + tail_s;
    precise float x_raw = (dot_c - 0.5 * coef[j * 2u * N] + dot_s) * (1.0 / float(N));
    const float x = live ? x_raw : 0.0;
    if (p.mode == 2u) {
      const float rho_rec = norm[j * 8u + 3u];
      const float a = rho_rec > 0.0 ? norm[j * 8u + 1u] / rho_rec : 0.0;
      if (live) part[pos * p.n_comp + j] = a * x + (norm[j * 8u] - a * norm[j * 8u + 2u]);
      return;
    }
    if (tid == 0u) shift_s = x;
    barrier();
    const float xs = live ? x - shift_s : 0.0;
    r_sum[tid] = xs;
    r_sq[tid] = xs * xs;
    r_min[tid] = live ? x : 3.0e38;
    r_max[tid] = live ? x : -3.0e38;
    barrier();
    for (uint k = WG / 2u; k > 0u; k >>= 1) {
      if (tid < k) {
        r_sum[tid] += r_sum[tid + k];
        r_sq[tid] += r_sq[tid + k];
        r_min[tid] = min(r_min[tid], r_min[tid + k]);
        r_max[tid] = max(r_max[tid], r_max[tid + k]);
      }
      barrier();
    }
    if (tid == 0u) {
      const uint at = (j * p.blocks + b) * 8u;
      part[at] = r_sum[0];
      part[at + 1u] = r_min[0];
      part[at + 2u] = r_max[0];
      part[at + 3u] = r_sq[0];
      part[at + 4u] = shift_s;
    }
    return;
  }
  const uint j = gl_GlobalInvocationID.x;
  if (j >= p.n_comp) return;
  // μ̃ from the shifted block sums: Σ x̃ = Σ_b (sum'_b + n_b s_b), as a float pair.
  vec2 total = vec2(0.0);
  float mn = 3.0e38, mx = -3.0e38;
  for (uint b = 0u; b < p.blocks; ++b) {
    const uint at = (j * p.blocks + b) * 8u;
    const float nb = float(min(WG, p.rows - b * WG));
    total = df_add(total, df_add(two_prod(nb, part[at + 4u]), vec2(part[at], 0.0)));
    mn = min(mn, part[at + 1u]);
    mx = max(mx, part[at + 2u]);
  }
  const float M = float(p.rows);
  const vec2 mean = df_div(total, M);
  const float mu_rec = mean.x;
  const float rho_rec = max(mx - mu_rec, mu_rec - mn);
  const uint at = j * 8u;
  const float mu = norm[at + 4u] / M;
  float rho = max(norm[at + 6u] - mu, mu - norm[at + 5u]);
  if (p.least_squares != 0u && rho_rec > 0.0) {
    // M·var = Σ (x̃ - μ̃)² = Σ_b [sq'_b + 2 (s_b - μ̃) sum'_b + n_b (s_b - μ̃)²]: small terms only.
    float mvar = 0.0;
    for (uint b = 0u; b < p.blocks; ++b) {
      const uint bt = (j * p.blocks + b) * 8u;
      const float nb = float(min(WG, p.rows - b * WG)), d = part[bt + 4u] - mu_rec;
      mvar += part[bt + 3u] + 2.0 * d * part[bt] + nb * d * d;
    }
    // cov = Σ_p x_p·x̃_p / M - μ·μ̃, Σ_p x_p·x̃_p = (1/N) Σ_n w_n (C_n² + S_n²) (Parseval), w_0 = 1/2.
    vec2 sxr = vec2(0.0);
    for (uint n = 0u; n < N; ++n) {
      const float c = coef[j * 2u * N + n], s = coef[j * 2u * N + N + n];
      vec2 t = df_add(two_prod(c, c), two_prod(s, s));
      if (n == 0u) t *= 0.5;
      sxr = df_add(sxr, t);
    }
    const vec2 cov = df_add(df_div(df_div(sxr, float(N)), M), -two_prod(mu, mu_rec));
    // The CPU's var = Σ x̃²/M - μ̃² with μ̃ rounded to float; Σ (x̃ - μ̃)²/M differs from it by 2·μ̃·δ,
    // δ = the rounding of μ̃ (mean.y). Matched, so that both backends fit the same a.
    const float var = mvar / M + 2.0 * mu_rec * mean.y;
    rho = var > 0.0 ? (cov.x / var) * rho_rec : 0.0;
  }
  norm[at] = mu;
  norm[at + 1u] = rho;
  norm[at + 2u] = mu_rec;
  norm[at + 3u] = rho_rec;
}
