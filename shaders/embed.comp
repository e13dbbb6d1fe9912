#version 450
// out[i, :] = dequantize(table row tokens[i]). The table may be bound in pieces (rows row_lo .. row_hi-1
// at byte w_base); a dispatch writes only the tokens whose row lies in its piece.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = 0u;

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 1) readonly buffer Tokens { int tokens[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Params {
  uint cols;
  uint row_lo;
  uint row_hi;
  uint w_base;
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

void main() {
  const uint i = linear_workgroup();
  const int id = tokens[i];
  if (id < int(p.row_lo) || id >= int(p.row_hi)) return;
  const uint rb = p.w_base + (uint(id) - p.row_lo) * row_bytes(p.cols);
  for (uint u = gl_LocalInvocationID.x; u < units_per_row(p.cols); u += gl_WorkGroupSize.x) {
    float v[32];
    decode_unit(rb, u, p.cols, v);
    const uint c0 = u * UNIT;
    [[unroll]] for (uint j = 0u; j < UNIT; ++j) {
      if (c0 + j < p.cols) o[i * p.cols + c0 + j] = v[j];  // constant indices keep v in registers
    }
  }
}
