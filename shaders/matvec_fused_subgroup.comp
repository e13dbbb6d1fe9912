#version 450
// Two or three decode matvecs of one x in one dispatch, partial sums added by subgroupAdd
// (common/matvec_fused.glsl); used only where the device reports subgroup arithmetic in compute shaders.
#define FKV_SUBGROUP_ADD 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec_fused.glsl"
