#version 450
// Range normalisation over middle positions 0 .. M-1 (split_kv_layer.h; CPU: refit() in split_kv_kernels.cpp).
//  mode 0: workgroup (block b, dim j) reconstructs x̃_j(p) for the block's positions from the coefficients
//          (x̃ = (1/N) Σ_n w_n (C cos + S sin), w_0 = 1/2) and writes the block's sum, min, max and sum of
//          squares;
//  mode 2: the same reconstruction, written out range normalised (x̂ = a·x̃ + b) as rows [M, n_comp] into
//          binding 2: split attention's rebuilt middle for prefill chunks;
//  mode 1: one invocation per dim adds the blocks in order and writes μ, ρ (from the running statistics),
//          μ̃, ρ̃ (max |x̃ - μ̃| = max(max - μ̃, μ̃ - min)), or the least-squares scale as ρ = a·ρ̃.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WG = 128u;  // equals local_size_x, a power of two

layout(std430, binding = 0) readonly buffer Coef { float coef[]; };  // [n_comp, 2N]
layout(std430, binding = 1) readonly buffer Table { vec2 basis[]; };
layout(std430, binding = 2) buffer Partial { float part[]; };        // [n_comp, blocks, 4]
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

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint N = p.n_freq;
  if (p.mode != 1u) {
    const uint b = gl_WorkGroupID.x, j = gl_WorkGroupID.y;
    const uint pos = b * WG + tid;
    const bool live = pos < p.rows;
    const uint step = pos % p.period;
    float c_acc = 0.0, s_acc = 0.0;
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
        c_acc += cs[k] * e.x;
        s_acc += cs[512u + k] * e.y;
        idx += step;
        if (idx >= p.period) idx -= p.period;
      }
    }
    const float x = live ? (c_acc - 0.5 * coef[j * 2u * N] + s_acc) / float(N) : 0.0;
    if (p.mode == 2u) {
      const float rho_rec = norm[j * 8u + 3u];
      const float a = rho_rec > 0.0 ? norm[j * 8u + 1u] / rho_rec : 0.0;
      if (live) part[pos * p.n_comp + j] = a * x + (norm[j * 8u] - a * norm[j * 8u + 2u]);
      return;
    }
    r_sum[tid] = x;
    r_sq[tid] = x * x;
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
      const uint at = (j * p.blocks + b) * 4u;
      part[at] = r_sum[0];
      part[at + 1u] = r_min[0];
      part[at + 2u] = r_max[0];
      part[at + 3u] = r_sq[0];
    }
    return;
  }
  const uint j = gl_GlobalInvocationID.x;
  if (j >= p.n_comp) return;
  float sum = 0.0, sq = 0.0, mn = 3.0e38, mx = -3.0e38;
  for (uint b = 0u; b < p.blocks; ++b) {
    const uint at = (j * p.blocks + b) * 4u;
    sum += part[at];
    mn = min(mn, part[at + 1u]);
    mx = max(mx, part[at + 2u]);
    sq += part[at + 3u];
  }
  const float M = float(p.rows);
  const float mu_rec = sum / M;
  const float rho_rec = max(mx - mu_rec, mu_rec - mn);
  const uint at = j * 8u;
  const float mu = norm[at + 4u] / M;
  float rho = max(norm[at + 6u] - mu, mu - norm[at + 5u]);
  if (p.least_squares != 0u && rho_rec > 0.0) {
    // Σ_p x_p·x̃_p = (1/N) Σ_n w_n (C_n² + S_n²) (Parseval), w_0 = 1/2.
    float sxr = 0.0;
    for (uint n = 0u; n < N; ++n) {
      const float c = coef[j * 2u * N + n], s = coef[j * 2u * N + N + n];
      sxr += (n == 0u ? 0.5 : 1.0) * (c * c + s * s);
    }
    sxr /= float(N);
    const float cov = sxr / M - mu * mu_rec, var = sq / M - mu_rec * mu_rec;
    rho = var > 0.0 ? (cov / var) * rho_rec : 0.0;
  }
  norm[at] = mu;
  norm[at + 1u] = rho;
  norm[at + 2u] = mu_rec;
  norm[at + 3u] = rho_rec;
}
