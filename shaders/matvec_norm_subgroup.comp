#version 450
// The decode matvec with the RMSNorm of its x folded in, partial sums added by subgroupAdd
// (common/matvec.glsl FKV_NORM); used only where the device reports subgroup arithmetic in compute shaders.
#define FKV_SUBGROUP_ADD 1
#define FKV_NORM 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
