#version 450
// The decode matvec that ends a residual add and starts the RMSNorm after it (common/matvec.glsl
// FKV_ADD_NORM: the norm fold), partial sums added by subgroupAdd.
#define FKV_SUBGROUP_ADD 1
#define FKV_ADD_NORM 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
