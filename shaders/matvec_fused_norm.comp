#version 450
// Two or three decode matvecs of one x with the RMSNorm of x folded in, partial sums added in
// shared memory (common/matvec_fused.glsl FKV_NORM).
#define FKV_SUBGROUP_ADD 0
#define FKV_NORM 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec_fused.glsl"
