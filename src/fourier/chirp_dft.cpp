#include "fourier/chirp_dft.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace fkv {

ChirpDft::ChirpDft(int period, int n_freq) : period_(period), n_freq_(n_freq) {
  require(period >= 1 && n_freq >= 1, ErrorCode::kInvalidArgument, "ChirpDft needs T >= 1 and N >= 1");
  length_ = 1;
  log2_length_ = 0;
  while (length_ < period + n_freq - 1) {
    length_ *= 2;
    ++log2_length_;
  }
  const int kmax = std::max(period, n_freq);
  chirp_.resize(size_t(kmax));
  for (int k = 0; k < kmax; ++k) {
    // k² mod 2T exactly in integers, so that large k keep their phase.
    const int64_t r = (int64_t(k) * k) % (2 * int64_t(period));
    const double angle = -M_PI * double(r) / double(period);
    chirp_[size_t(k)] = cfloat(float(std::cos(angle)), float(std::sin(angle)));
  }
  twiddle_.resize(size_t(std::max(1, length_ / 2)));
  for (int k = 0; k < length_ / 2; ++k) {
    const double angle = -2.0 * M_PI * k / length_;
    twiddle_[size_t(k)] = cfloat(float(std::cos(angle)), float(std::sin(angle)));
  }
  auto w = [&](int k) { return chirp_[size_t(std::abs(k))]; };  // w[−k] = w[k]
  kern_forward_.assign(size_t(length_), cfloat(0));
  for (int k = -(period - 1); k <= n_freq - 1; ++k)
    kern_forward_[size_t((k + length_) % length_)] = std::conj(w(k));
  kern_inverse_.assign(size_t(length_), cfloat(0));
  for (int k = -(n_freq - 1); k <= period - 1; ++k) kern_inverse_[size_t((k + length_) % length_)] = w(k);
  fft(kern_forward_.data(), -1);
  fft(kern_inverse_.data(), -1);
}

void ChirpDft::fft(cfloat* a, int sign) const {
  const int n = length_;
  for (int i = 1, j = 0; i < n; ++i) {
    int bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (int len = 2; len <= n; len <<= 1) {
    const int half = len / 2, stride = n / len;
    for (int i = 0; i < n; i += len) {
      for (int k = 0; k < half; ++k) {
        cfloat t = twiddle_[size_t(k * stride)];
        if (sign > 0) t = std::conj(t);
        const cfloat u = a[i + k], v = a[i + k + half] * t;
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
    }
  }
}

void ChirpDft::convolve(const cfloat* u, int n_in, int n_out, bool inverse, cfloat* out) const {
  std::vector<cfloat> buf(size_t(length_), cfloat(0));
  // Forward: z[n] = w[n] Σ_p (x[p] w[p]) conj(w[n − p]); inverse: conjugate chirps.
  for (int b = 0; b < n_in; ++b)
    buf[size_t(b)] = u[b] * (inverse ? std::conj(chirp_[size_t(b)]) : chirp_[size_t(b)]);
  fft(buf.data(), -1);
  const std::vector<cfloat>& kern = inverse ? kern_inverse_ : kern_forward_;
  for (int i = 0; i < length_; ++i) buf[size_t(i)] *= kern[size_t(i)];
  fft(buf.data(), +1);
  const float scale = 1.0f / float(length_);
  for (int a = 0; a < n_out; ++a) {
    const cfloat c = inverse ? std::conj(chirp_[size_t(a)]) : chirp_[size_t(a)];
    out[a] = buf[size_t(a)] * scale * c;
  }
}

void ChirpDft::inverse(const cfloat* x, int m, cfloat* y) const {
  require(m >= 0 && m <= period_, ErrorCode::kInvalidArgument, "ChirpDft::inverse: m exceeds the period");
  convolve(x, n_freq_, m, true, y);
}

void ChirpDft::forward(const cfloat* x, int m, cfloat* z) const {
  require(m >= 0 && m <= period_, ErrorCode::kInvalidArgument, "ChirpDft::forward: m exceeds the period");
  convolve(x, m, n_freq_, false, z);
}

}  // namespace fkv
