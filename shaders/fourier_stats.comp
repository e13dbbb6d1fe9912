#version 450
// Running statistics of the true values of the middle's compressed dims (norm[4..6]: sum, min, max), rows
// added in order like the CPU reference. init: start from row 0 (the fit), else continue.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Rows { float rows[]; };  // [count, n_comp]
layout(std430, binding = 1) buffer Norm { float norm[]; };           // [n_comp, 8]

layout(push_constant) uniform Params {
  uint count;
  uint n_comp;
  uint rows_base;  // float offset of row 0
  uint init;
} p;

void main() {
  const uint j = gl_GlobalInvocationID.x;
  if (j >= p.n_comp) return;
  const uint at = j * 8u;
  precise float sum = norm[at + 4u];
  float mn = norm[at + 5u], mx = norm[at + 6u];
  if (p.init != 0u) {
    sum = 0.0;
    mn = mx = rows[p.rows_base + j];
    norm[at + 7u] = 0.0;
  }
  for (uint i = 0u; i < p.count; ++i) {
    const float x = rows[p.rows_base + i * p.n_comp + j];
    sum += x;
    mn = min(mn, x);
    mx = max(mx, x);
  }
  norm[at + 4u] = sum;
  norm[at + 5u] = mn;
  norm[at + 6u] = mx;
}
