#version 450
// A residual add fused with the RMSNorm of its sum, one workgroup per row, the row's sum by a
// shared-memory tree: common/rms_norm.glsl.
#define FKV_ADD 1
#define FKV_SUBGROUP_ADD 0
#extension GL_GOOGLE_include_directive : require
#include "common/rms_norm.glsl"
