// Partial DFTs on a period-T grid between N frequencies and the first m <= T positions, by Bluestein's
// chirp-z transform (n·p = (n² + p² − (p − n)²) / 2 turns the DFT into a convolution, done with power-of-two
// FFTs of length L >= T + N − 1). Cost O(L log L) whatever N and m: the spectral path's inverse DFT of the
// score coefficients and forward DFT of the attention weights (../shared/FOURIER.md, path 3).
#pragma once
#include <complex>
#include <vector>

namespace fkv {

class ChirpDft {
 public:
  using cfloat = std::complex<float>;
  ChirpDft(int period, int n_freq);

  int period() const { return period_; }
  int n_freq() const { return n_freq_; }
  int fft_length() const { return length_; }

  // y[p] = Σ_{n<N} x[n]·e^{+2πi n p / T} for p < m.
  void inverse(const cfloat* x, int m, cfloat* y) const;
  // z[n] = Σ_{p<m} x[p]·e^{−2πi n p / T} for n < N.
  void forward(const cfloat* x, int m, cfloat* z) const;

 private:
  // In-place radix-2 FFT of length_ (sign −1 forward, +1 inverse, unnormalised).
  void fft(cfloat* a, int sign) const;
  // out[a] = chirp'[a] · Σ_b (u[b]·chirp[b]) · kern[a − b], a < n_out, b < n_in.
  void convolve(const cfloat* u, int n_in, int n_out, bool inverse, cfloat* out) const;

  int period_, n_freq_, length_, log2_length_;
  std::vector<cfloat> chirp_;         // w[k] = e^{−iπ k² / T}, k < max(T, N)
  std::vector<cfloat> twiddle_;       // e^{−2πi k / L}, k < L/2
  std::vector<cfloat> kern_forward_;  // FFT of conj(w[k]) placed at k mod L, k in [−(T−1), N−1]
  std::vector<cfloat> kern_inverse_;  // FFT of w[k] placed at k mod L, k in [−(N−1), T−1]
};

}  // namespace fkv
