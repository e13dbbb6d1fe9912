#version 450
// RMSNorm of rows, one workgroup per row, the row's sum by a shared-memory tree:
// common/rms_norm.glsl.
#define FKV_ADD 0
#define FKV_SUBGROUP_ADD 0
#extension GL_GOOGLE_include_directive : require
#include "common/rms_norm.glsl"
