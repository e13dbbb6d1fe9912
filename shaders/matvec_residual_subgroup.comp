#version 450
// The decode matvec with the residual add after it folded in, partial sums added by subgroupAdd
// (common/matvec.glsl FKV_RESIDUAL); used only where the device reports subgroup arithmetic in compute shaders.
#define FKV_SUBGROUP_ADD 1
#define FKV_RESIDUAL 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
