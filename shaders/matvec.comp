#version 450
// The decode matvec with partial sums added in shared memory (common/matvec.glsl).
#define FKV_SUBGROUP_ADD 0
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
