// Host side of split_chirp.h: the chirp and span-spectrum tables, in double precision.
#include "split_chirp.h"

#include <cmath>
#include <complex>

namespace fkv::cuda {
namespace {

using cd = std::complex<double>;

// e^{sign·iπ k²/T} from the exact integer k² mod 2T.
cd chirp(long long k, int period, double sign) {
  const long long r = (k * k) % (2LL * period);
  const double a = sign * M_PI * double(r) / double(period);
  return cd(std::cos(a), std::sin(a));
}

// In-place radix-2 FFT, e^{−2πijk/F}.
void fft(std::vector<cd>& x) {
  const int n = int(x.size());
  for (int i = 1, j = 0; i < n; ++i) {
    int bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(x[size_t(i)], x[size_t(j)]);
  }
  for (int len = 2; len <= n; len <<= 1) {
    const double ang = -2.0 * M_PI / len;
    for (int i = 0; i < n; i += len)
      for (int k = 0; k < len / 2; ++k) {
        const cd w(std::cos(ang * k), std::sin(ang * k));
        const cd u = x[size_t(i + k)], v = x[size_t(i + k + len / 2)] * w;
        x[size_t(i + k)] = u + v;
        x[size_t(i + k + len / 2)] = u - v;
      }
  }
}

float2 to_f2(cd c) {
  return make_float2(float(c.real()), float(c.imag()));
}

}  // namespace

ChirpTables build_chirp_tables(int period, int n_freq) {
  ChirpTables t;
  const int F = kChirpF, B = chirp_span(n_freq);
  t.chirp_n.resize(size_t(n_freq));
  for (int n = 0; n < n_freq; ++n) t.chirp_n[size_t(n)] = to_f2(chirp(n, period, 1.0));
  t.chirp_m.resize(size_t(period));
  for (int m = 0; m < period; ++m) t.chirp_m[size_t(m)] = to_f2(chirp(m, period, 1.0));
  t.spans = (period + B - 1) / B;
  t.seg.resize(size_t(t.spans) * F);
  std::vector<cd> g(static_cast<size_t>(F));
  for (int s = 0; s < t.spans; ++s) {
    const long long k0 = (long long)s * B - (n_freq - 1);
    for (int j = 0; j < F; ++j) g[size_t(j)] = chirp(k0 + j, period, -1.0);
    fft(g);
    for (int j = 0; j < F; ++j) t.seg[size_t(s) * F + j] = to_f2(g[size_t(j)]);
  }
  t.twiddle.resize(size_t(F / 2));
  for (int k = 0; k < F / 2; ++k)
    t.twiddle[size_t(k)] =
        make_float2(float(std::cos(-2.0 * M_PI * k / F)), float(std::sin(-2.0 * M_PI * k / F)));
  return t;
}

}  // namespace fkv::cuda
