#include "fourier/fourier_transform.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fkv {
namespace {

// The basis row of position p: cos and sin of 2π n p / T for n < N, by exact integer angle indices.
void basis_row(const FourierBasis& b, int p, float* c, float* s) {
  const int T = b.period(), N = b.n_freq();
  const int step = p % T;
  int idx = 0;
  for (int n = 0; n < N; ++n) {
    c[n] = b.cos_table()[idx];
    s[n] = b.sin_table()[idx];
    idx += step;
    if (idx >= T) idx -= T;
  }
}

float dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

}  // namespace

void fourier_accumulate(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, int m0,
                        float* coef) {
  const int N = b.n_freq();
  std::vector<float> c(static_cast<size_t>(N)), s(static_cast<size_t>(N));
  for (int i = 0; i < rows; ++i) {
    basis_row(b, m0 + i, c.data(), s.data());
    const float* x = values + size_t(i) * stride;
    for (int j = 0; j < n_comp; ++j) {
      const float v = x[j];
      float* cc = coef + size_t(j) * 2 * N;
      float* ss = cc + N;
      for (int n = 0; n < N; ++n) {
        cc[n] += v * c[size_t(n)];
        ss[n] += v * s[size_t(n)];
      }
    }
  }
}

void fourier_project(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, int m0,
                     float* coef) {
  std::fill(coef, coef + size_t(n_comp) * 2 * b.n_freq(), 0.0f);
  fourier_accumulate(b, values, rows, stride, n_comp, m0, coef);
}

void fourier_reconstruct(const FourierBasis& b, const float* coef, int n_comp, int m0, int rows, float* out) {
  const int N = b.n_freq();
  const float inv_n = 1.0f / float(N);
  std::vector<float> c(static_cast<size_t>(N)), s(static_cast<size_t>(N));
  for (int i = 0; i < rows; ++i) {
    basis_row(b, m0 + i, c.data(), s.data());
    for (int j = 0; j < n_comp; ++j) {
      const float* cc = coef + size_t(j) * 2 * N;
      // The DC term at half weight (see the header): c[0] = 1, s[0] = 0.
      out[size_t(i) * n_comp + j] = (dot(cc, c.data(), N) - 0.5f * cc[0] + dot(cc + N, s.data(), N)) * inv_n;
    }
  }
}

RangeNorm range_norm(const float* x, int x_stride, const float* xr, int xr_stride, int count) {
  RangeNorm r;
  if (count <= 0) return r;
  double sx = 0, sr = 0;
  for (int i = 0; i < count; ++i) {
    sx += x[size_t(i) * x_stride];
    sr += xr[size_t(i) * xr_stride];
  }
  r.mu = float(sx / count);
  r.mu_rec = float(sr / count);
  for (int i = 0; i < count; ++i) {
    r.rho = std::max(r.rho, std::fabs(x[size_t(i) * x_stride] - r.mu));
    r.rho_rec = std::max(r.rho_rec, std::fabs(xr[size_t(i) * xr_stride] - r.mu_rec));
  }
  return r;
}

void fourier_fit(const FourierBasis& b, const float* values, int rows, int stride, int n_comp, float* coef,
                 float* norm) {
  fourier_project(b, values, rows, stride, n_comp, 0, coef);
  std::vector<float> rec(size_t(rows) * n_comp);
  fourier_reconstruct(b, coef, n_comp, 0, rows, rec.data());
  for (int j = 0; j < n_comp; ++j) {
    const RangeNorm r = range_norm(values + j, stride, rec.data() + j, n_comp, rows);
    float* o = norm + size_t(j) * 4;
    o[0] = r.mu;
    o[1] = r.rho;
    o[2] = r.mu_rec;
    o[3] = r.rho_rec;
  }
}

}  // namespace fkv
