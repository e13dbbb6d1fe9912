// FOURIER.md "What to test", the math: projection = accumulation, band-limited recovery and error falling
// with N, the chirp DFT against a direct DFT.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>
#include <vector>

#include "fourier/chirp_dft.h"
#include "fourier/fourier_basis.h"
#include "fourier/fourier_transform.h"

namespace fkv {
namespace {

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / std::max(den, 1e-30);
}

TEST(FourierMath, ProjectionEqualsTokenByTokenAccumulation) {
  const int T = 300, N = 40, rows = 250, nc = 5;
  FourierBasis b(T, N);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(rows) * nc);
  for (float& v : x) v = nd(rng);
  std::vector<float> proj(size_t(nc) * 2 * N), acc(size_t(nc) * 2 * N, 0.0f);
  fourier_project(b, x.data(), rows, nc, nc, 0, proj.data());
  for (int i = 0; i < rows; ++i) fourier_accumulate(b, x.data() + size_t(i) * nc, 1, nc, nc, i, acc.data());
  EXPECT_LT(rel_diff(acc, proj), 1e-5);
  // And both against the definition in double precision.
  std::vector<float> exact(proj.size());
  for (int c = 0; c < nc; ++c)
    for (int n = 0; n < N; ++n) {
      double sc = 0, ss = 0;
      for (int p = 0; p < rows; ++p) {
        sc += x[size_t(p) * nc + c] * std::cos(2 * M_PI * n * p / T);
        ss += x[size_t(p) * nc + c] * std::sin(2 * M_PI * n * p / T);
      }
      exact[size_t(c) * 2 * N + n] = float(sc);
      exact[size_t(c) * 2 * N + N + n] = float(ss);
    }
  EXPECT_LT(rel_diff(proj, exact), 1e-5);
}

// x_p = Σ_{n<K} a_n cos(2πnp/T) + b_n sin(2πnp/T), amplitudes decaying as 1/(n+1)^decay.
std::vector<float> band_signal(int T, int K, double decay, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> a(static_cast<size_t>(K)), bb(static_cast<size_t>(K));
  for (int n = 0; n < K; ++n) {
    a[size_t(n)] = nd(rng) / std::pow(n + 1.0, decay);
    bb[size_t(n)] = n == 0 ? 0 : nd(rng) / std::pow(n + 1.0, decay);
  }
  std::vector<float> x(static_cast<size_t>(T));
  for (int p = 0; p < T; ++p) {
    double v = 0;
    for (int n = 0; n < K; ++n)
      v += a[size_t(n)] * std::cos(2 * M_PI * n * p / T) + bb[size_t(n)] * std::sin(2 * M_PI * n * p / T);
    x[size_t(p)] = float(v);
  }
  return x;
}

// Reconstruction with range normalisation (x̂ = a x̃ + b) over a full middle of T positions.
std::vector<float> reconstruct_normalised(const std::vector<float>& x, int N) {
  const int T = int(x.size());
  FourierBasis b(T, N);
  std::vector<float> coef(size_t(2 * N)), norm(4), rec(static_cast<size_t>(T));
  fourier_fit(b, x.data(), T, 1, 1, coef.data(), norm.data());
  fourier_reconstruct(b, coef.data(), 1, 0, T, rec.data());
  const RangeNorm rn{norm[0], norm[1], norm[2], norm[3]};
  for (float& v : rec) v = rn.a() * v + rn.b();
  return rec;
}

TEST(FourierMath, BandLimitedSignalIsRecoveredWithHalfTheFrequencies) {
  const int T = 256;
  const std::vector<float> x = band_signal(T, T / 2, 0.5, 7);
  const std::vector<float> rec = reconstruct_normalised(x, T / 2);
  EXPECT_LT(rel_diff(rec, x), 1e-4);
}

TEST(FourierMath, ErrorFallsAsNGrows) {
  const int T = 512;
  const std::vector<float> x = band_signal(T, T / 2, 1.0, 3);
  double last = 1e30;
  for (int N : {8, 16, 32, 64, 128, 256}) {
    const std::vector<float> rec = reconstruct_normalised(x, N);
    double mse = 0;
    for (int p = 0; p < T; ++p) mse += (rec[size_t(p)] - x[size_t(p)]) * (rec[size_t(p)] - x[size_t(p)]);
    mse /= T;
    EXPECT_LT(mse, last) << "N = " << N;
    last = mse;
  }
  EXPECT_LT(last, 1e-8);
}

TEST(FourierMath, ChirpDftMatchesDirectDft) {
  for (auto [T, N, m] : {std::tuple{300, 40, 217}, {256, 128, 256}, {37, 50, 37}, {1000, 16, 1}}) {
    ChirpDft dft(T, N);
    std::mt19937 rng(T);
    std::normal_distribution<float> nd;
    std::vector<std::complex<float>> xf(static_cast<size_t>(N)), xp(static_cast<size_t>(m)),
        y(static_cast<size_t>(m)), z(static_cast<size_t>(N));
    for (auto& v : xf) v = {nd(rng), nd(rng)};
    for (auto& v : xp) v = {nd(rng), nd(rng)};
    dft.inverse(xf.data(), m, y.data());
    dft.forward(xp.data(), m, z.data());
    double err = 0, mag = 0;
    for (int p = 0; p < m; ++p) {
      std::complex<double> s = 0;
      for (int n = 0; n < N; ++n)
        s += std::complex<double>(xf[size_t(n)]) *
             std::polar(1.0, 2 * M_PI * double((int64_t(n) * p) % T) / T);
      err = std::max(err, std::abs(s - std::complex<double>(y[size_t(p)])));
      mag = std::max(mag, std::abs(s));
    }
    for (int n = 0; n < N; ++n) {
      std::complex<double> s = 0;
      for (int p = 0; p < m; ++p)
        s += std::complex<double>(xp[size_t(p)]) *
             std::polar(1.0, -2 * M_PI * double((int64_t(n) * p) % T) / T);
      err = std::max(err, std::abs(s - std::complex<double>(z[size_t(n)])));
      mag = std::max(mag, std::abs(s));
    }
    EXPECT_LT(err / mag, 1e-5) << "T=" << T << " N=" << N << " m=" << m;
  }
}

}  // namespace
}  // namespace fkv
