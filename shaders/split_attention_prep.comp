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

// Workgroup (query head x, frequency block y of the workgroup's size): q_j·a_j of the head's compressed dims
// is formed once into shared memory, then each invocation sums one frequency over the dims (coalesced coef
// loads). The first version (one workgroup per query head, q·a recomputed per frequency) left the GPU
// mostly idle (32 workgroups at the 8B shape).
const uint QA = 256u;
shared float qa_s[QA];

void main() {
  const uint qh = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
  if (qh >= p.count) return;
  const uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  const uint h = qh % p.heads, g = h / (p.heads / p.kv_heads);
  const uint N = p.n_freq, stride = 2u * N + 4u;
  const uint c0 = uint(dims[p.kv_heads + 1u + g]), c1 = uint(dims[p.kv_heads + 1u + g + 1u]);
  const uint comp = 2u * (p.kv_heads + 1u) + p.n_keep;
  const float inv_n = 1.0 / float(N);
  const uint n = gl_WorkGroupID.y * wg + tid;
  float gc = 0.0, gs = 0.0;
  for (uint cb = c0; cb < c1; cb += QA) {
    const uint nb = min(QA, c1 - cb);
    barrier();  // qa_s is free
    for (uint e = tid; e < nb; e += wg) qa_s[e] = q[qh * p.head_dim + uint(dims[comp + cb + e])] * scale_a(cb + e);
    barrier();
    if (n < N)
      for (uint e = 0u; e < nb; ++e) {
        gc += qa_s[e] * coef[(cb + e) * 2u * N + n];
        gs += qa_s[e] * coef[(cb + e) * 2u * N + N + n];
      }
  }
  if (n < N) {
    const float w = (n == 0u ? 0.5 : 1.0) * inv_n;
    gv[qh * stride + n] = gc * w;
    gv[qh * stride + N + n] = gs * w;
  }
  if (gl_WorkGroupID.y == 0u && tid == 0u) {
    float cst = 0.0;
    for (uint c = c0; c < c1; ++c) {
      const float a = scale_a(c);
      cst += q[qh * p.head_dim + uint(dims[comp + c])] * (norm[c * 8u] - a * norm[c * 8u + 2u]);
    }
    gv[qh * stride + 2u * N] = cst;
  }
}
