#version 450
// A residual add fused with the RMSNorm of its sum, one workgroup per row, the row's sum by
// subgroupAdd (used only where the device has subgroup arithmetic in compute): common/rms_norm.glsl.
#define FKV_ADD 1
#define FKV_SUBGROUP_ADD 1
#extension GL_GOOGLE_include_directive : require
#include "common/rms_norm.glsl"
