#version 450
// Coefficient accumulation (backend.h fourier_accumulate): adds the rows' projections to coef, rows in
// order. Decode records it for the token that leaves the window; no host round trip.
#extension GL_GOOGLE_include_directive : require
const bool PROJECT = false;
#include "common/fourier_sum.glsl"
