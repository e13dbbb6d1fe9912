#version 450
// Split-cache attention, first step when the middle is fitted (FOURIER.md path 3, evaluated directly):
// per (query i, head h) the compressed K dims' score part becomes one vector over frequencies,
//   g_c[n] = w_n/N Σ_j q_j a_j C_j[n],  g_s[n] = w_n/N Σ_j q_j a_j S_j[n]  (w_0 = 1/2, else 1),
//   g[2N] = Σ_j q_j b_j,
// so that a middle row m scores Σ_n g_c[n] cos(2π n m/T) + g_s[n] sin(2π n m/T) + g[2N]: 2N operations per
// row and query head instead of rebuilding every compressed dim (2N·d_c).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x = 256) in;

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

const uint PREP_WG = 256u;
#include "common/split_prep_body.glsl"

void main() { prep(gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x, gl_WorkGroupID.y); }

