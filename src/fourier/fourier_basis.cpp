#include "fourier/fourier_basis.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace fkv {

FourierBasis::FourierBasis(int period, int n_freq) : period_(period), n_freq_(n_freq) {
  require(period >= 1, ErrorCode::kInvalidArgument,
          "Fourier period T must be positive, got " + std::to_string(period));
  require(n_freq >= 1, ErrorCode::kInvalidArgument, "Fourier frequency count N must be positive");
  cos_.resize(size_t(period));
  sin_.resize(size_t(period));
  // Double precision angles, rounded once: the table is exact to fp32 rounding at every entry.
  const double step = 2.0 * M_PI / double(period);
  for (int k = 0; k < period; ++k) {
    cos_[size_t(k)] = float(std::cos(step * k));
    sin_[size_t(k)] = float(std::sin(step * k));
  }
}

}  // namespace fkv
