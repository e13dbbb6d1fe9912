#version 450
// The decode matvec with partial sums added by subgroupAdd (common/matvec.glsl); used only where the
// device reports subgroup arithmetic in compute shaders.
#define FKV_SUBGROUP_ADD 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
