// Projection, accumulation, reconstruction and range normalisation of compressed dims (../shared/FOURIER.md),
// in fp32 on the host. These functions define the math; the CPU backend calls them directly and every other
// backend is tested against them.
//
// Layouts: `values` are rows of n_comp compressed-dim values ([rows, n_comp], row stride `stride` floats),
// row i at middle position m0 + i. `coef` is [n_comp, 2N]: dim c's cosine coefficients C_c[0..N) then its
// sine coefficients S_c[0..N).
#pragma once
#include "fourier/fourier_basis.h"

namespace fkv {

// coef[c] += Σ_i values[i, c] · (cos, sin)(2π n (m0 + i) / T). Rows are added in order, one at a time, so
// that projecting a block of rows and accumulating them one by one give the same floats.
void fourier_accumulate(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, int m0,
                        float* coef);

// coef = 0, then fourier_accumulate: the prefill projection.
void fourier_project(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, int m0,
                     float* coef);

// out[i, c] = x̃_c(m0 + i) = (1/N) Σ_n w_n (C_c[n] cos(2π n p / T) + S_c[n] sin(2π n p / T)), out stride
// n_comp, w_0 = 1/2 and w_n = 1 otherwise. fkv: FOURIER.md weighs the DC term like the others; the half
// weight (the Fourier series' own) differs from it by the constant C_c[0]/(2N), which range normalisation
// absorbs at the fit, so both give the same x̂ there. After the fit they differ: every token accumulated later
// raises C_c[0], and with full weight that shifts the reconstruction of every earlier middle position by
// x/(2N) while μ̃ stays fixed, a bias that grows with the middle (large when the fit happens at 256 tokens and
// the middle grows to thousands). With half weight a new token changes the reconstruction only near its own
// position.
void fourier_reconstruct(const FourierBasis& b, const float* coef, int n_comp, int m0, int rows, float* out);

// The four range-normalisation numbers of one compressed dim and the affine map they define:
// x̂ = (x̃ − μ̃)·ρ/ρ̃ + μ = a·x̃ + b.
struct RangeNorm {
  float mu = 0, rho = 0;          // mean and max |x − μ| of the true values over the middle
  float mu_rec = 0, rho_rec = 0;  // the same for the reconstruction x̃
  // A flat reconstruction carries no shape to rescale: then x̂ = μ.
  float a() const { return rho_rec > 0 ? rho / rho_rec : 0.0f; }
  float b() const { return mu - a() * mu_rec; }
};

// Range normalisation of one dim from `count` true values x and reconstructions xr (strides in floats).
RangeNorm range_norm(const float* x, int x_stride, const float* xr, int xr_stride, int count);

// Fits the range normalisation of n_comp dims over middle positions 0 .. rows-1: projects `values`
// (rows [rows, n_comp], stride `stride`) into coef (overwritten), reconstructs, writes norm [n_comp, 4]
// = (μ, ρ, μ̃, ρ̃). The step that fixes a compressed middle once it has formed.
void fourier_fit(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, float* coef,
                 float* norm);

}  // namespace fkv
