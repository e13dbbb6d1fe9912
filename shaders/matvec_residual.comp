#version 450
// The decode matvec with the residual add after it folded in, partial sums added in
// shared memory (common/matvec.glsl FKV_RESIDUAL).
#define FKV_SUBGROUP_ADD 0
#define FKV_RESIDUAL 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
