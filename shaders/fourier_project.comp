#version 450
// Fourier projection (backend.h fourier_project): coef[c, f] = Σ_i values[i, c]·cos(2π f (m0+i) / T),
// coef[c, N + f] the same with sin; overwrites coef. The prefill fit projects the pending rows with it.
#extension GL_GOOGLE_include_directive : require
const bool PROJECT = true;
#include "common/fourier_sum.glsl"
