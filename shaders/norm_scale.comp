#version 450
// The end of a folded RMSNorm for readers that cannot apply its scale themselves (the norm fold:
// vulkan_backend.cpp): x[i] *= 1 / sqrt(sum / dim + eps) for i < dim, the sum from accumulator slot
// p.slot (common/norm_sum.glsl), where matvec_add_norm.comp left x = h * norm weight.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer NormSum2 { uvec2 norm_sum2[]; };

layout(push_constant) uniform Params {
  uint dim;
  uint slot;
  float eps;
} p;

#include "common/grid.glsl"
#define NORM_SUM2 norm_sum2
#include "common/norm_sum.glsl"

void main() {
  norm_sum_load(p.slot);
  const float s = norm_sum_scale(p.dim, p.eps);
  for (uint i = linear_workgroup() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; i < p.dim;
       i += linear_workgroup_count() * gl_WorkGroupSize.x)
    x[i] *= s;
}
