#version 450
// The decode matvec with the RMSNorm of its x folded in, partial sums added in
// shared memory (common/matvec.glsl FKV_NORM).
#define FKV_SUBGROUP_ADD 0
#define FKV_NORM 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
