#version 450
// Element-wise ops over count values: OP 0 is add (out = a + b), OP 1 is SwiGLU (out = silu(a) * b).
// out may alias a or b: each invocation reads its element before writing it.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0u;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Params {
  uint count;
} p;

#include "common/grid.glsl"

void main() {
  for (uint g = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; g < p.count;
       g += linear_workgroup_count() * gl_WorkGroupSize.x) {
    const float va = a[g], vb = b[g];
    o[g] = OP == 0u ? va + vb : va / (1.0 + exp(-va)) * vb;
  }
}
