#version 450
// Two or three decode matvecs of one x in one dispatch, partial sums added in shared memory
// (common/matvec_fused.glsl).
#define FKV_SUBGROUP_ADD 0
#extension GL_GOOGLE_include_directive : require
#include "common/matvec_fused.glsl"
