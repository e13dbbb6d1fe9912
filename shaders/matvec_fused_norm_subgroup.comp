#version 450
// Two or three decode matvecs of one x with the RMSNorm of x folded in, partial sums added by subgroupAdd
// (common/matvec_fused.glsl FKV_NORM); used only where the device reports subgroup arithmetic in compute shaders.
#define FKV_SUBGROUP_ADD 1
#define FKV_NORM 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec_fused.glsl"
