#version 450
// Split-cache attention, first step when the middle is fitted (FOURIER.md path 3, evaluated directly):
// per (query i, head h) the compressed K dims' score part becomes one vector over frequencies,
//   g_c[n] = w_n/N Σ_j q_j a_j C_j[n],  g_s[n] = w_n/N Σ_j q_j a_j S_j[n]  (w_0 = 1/2, else 1),
//   g[2N] = Σ_j q_j b_j,
// so that a middle row m scores Σ_n g_c[n] cos(2π n m/T) + g_s[n] sin(2π n m/T) + g[2N]: 2N operations per
// row and query head instead of rebuilding every compressed dim (2N·d_c).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Q { float q[]; };        // [n, heads, D]
layout(std430, binding = 1) readonly buffer Coef { float coef[]; };  // K: [n_comp, 2N]
layout(std430, binding = 2) readonly buffer Norm { float norm[]; };  // K: [n_comp, 8]
layout(std430, binding = 3) readonly buffer Dims { int dims[]; };
layout(std430, binding = 4) writeonly buffer G { float gv[]; };      // [n, heads, 2N + 4]

layout(push_constant) uniform Params {
  uint count;  // n * heads
  uint heads;
  uint kv_heads;
  uint head_dim;
  uint n_freq;
  uint n_keep;
} p;

#include "common/grid.glsl"

float scale_a(uint c) {
  const float rho_rec = norm[c * 8u + 3u];
  return rho_rec > 0.0 ? norm[c * 8u + 1u] / rho_rec : 0.0;
}

void main() {
  const uint qh = linear_workgroup();
  if (qh >= p.count) return;
  const uint h = qh % p.heads, g = h / (p.heads / p.kv_heads);
  const uint N = p.n_freq, stride = 2u * N + 4u;
  const uint c0 = uint(dims[p.kv_heads + 1u + g]), c1 = uint(dims[p.kv_heads + 1u + g + 1u]);
  const uint comp = 2u * (p.kv_heads + 1u) + p.n_keep;
  const float inv_n = 1.0 / float(N);
  for (uint n = gl_LocalInvocationID.x; n < N; n += gl_WorkGroupSize.x) {
    float gc = 0.0, gs = 0.0;
    for (uint c = c0; c < c1; ++c) {
      const float qa = q[qh * p.head_dim + uint(dims[comp + c])] * scale_a(c);
      gc += qa * coef[c * 2u * N + n];
      gs += qa * coef[c * 2u * N + N + n];
    }
    const float w = (n == 0u ? 0.5 : 1.0) * inv_n;
    gv[qh * stride + n] = gc * w;
    gv[qh * stride + N + n] = gs * w;
  }
  if (gl_LocalInvocationID.x == 0u) {
    float cst = 0.0;
    for (uint c = c0; c < c1; ++c) {
      const float a = scale_a(c);
      cst += q[qh * p.head_dim + uint(dims[comp + c])] * (norm[c * 8u] - a * norm[c * 8u + 2u]);
    }
    gv[qh * stride + 2u * N] = cst;
  }
}
