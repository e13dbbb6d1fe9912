// The FourierAttention basis (../shared/FOURIER.md): cos(2π n p / T) and sin(2π n p / T) for frequency n and
// middle position p, T the middle's capacity. Every angle is a multiple of 2π/T, so one table of T values
// serves every (n, p) pair through the exact integer index (n·p) mod T: no drift, no per-call trig.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fkv {

class FourierBasis {
 public:
  FourierBasis() = default;
  // T: the middle's capacity (the period), n_freq: N, frequencies 0 .. N-1. Requires T >= 1, N >= 1.
  FourierBasis(int period, int n_freq);

  int period() const { return period_; }
  int n_freq() const { return n_freq_; }
  int64_t index(int n, int p) const { return (int64_t(n) * int64_t(p)) % period_; }
  float cos(int n, int p) const { return cos_[size_t(index(n, p))]; }
  float sin(int n, int p) const { return sin_[size_t(index(n, p))]; }
  // cos(2π k / T), sin(2π k / T) for k in [0, T).
  const float* cos_table() const { return cos_.data(); }
  const float* sin_table() const { return sin_.data(); }

 private:
  int period_ = 0;
  int n_freq_ = 0;
  std::vector<float> cos_, sin_;
};

}  // namespace fkv
