#version 450
// The decode matvec whose last workgroup adds the product to the residual and normalises the sum
// (common/matvec_norm_epilogue.glsl), partial sums added in shared memory.
#define FKV_SUBGROUP_ADD 0
#define FKV_NORM_EPILOGUE 1
#extension GL_GOOGLE_include_directive : require
#include "common/matvec.glsl"
