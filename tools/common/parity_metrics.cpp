#include "common/parity_metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fkv::tools {

namespace {

// log softmax of one row, in double: the KL of nearly equal distributions is a small difference of large
// numbers.
void log_softmax(const float* x, size_t n, std::vector<double>& out) {
  out.resize(n);
  double mx = -INFINITY;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < n; ++i) out[i] = double(x[i]) - lse;
}

}  // namespace

ParityMetrics compare_tensors(const std::vector<float>& a, const std::vector<float>& b, size_t rows,
                              size_t cols) {
  if (a.size() != rows * cols || b.size() != rows * cols)
    throw std::invalid_argument("compare_tensors: tensor sizes do not match their shape");
  ParityMetrics m;
  double sum_a2 = 0, sum_d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    sum_a2 += double(a[i]) * a[i];
    sum_d2 += d * d;
  }
  const double rms = a.empty() ? 0 : std::sqrt(sum_a2 / double(a.size()));
  const double floor = 0.01 * rms + 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m.max_abs)) m.max_abs = d;  // NaN propagates
    const double r = d / (std::fabs(double(a[i])) + floor);
    if (!(r <= m.max_rel)) m.max_rel = r;
  }
  m.nmse = sum_a2 > 0 ? sum_d2 / sum_a2 : (sum_d2 > 0 ? INFINITY : 0);
  if (std::isnan(sum_d2)) m.nmse = NAN;
  for (size_t r = 0; r < rows; ++r) {
    double dot = 0, na = 0, nb = 0;
    for (size_t c = 0; c < cols; ++c) {
      const double x = a[r * cols + c], y = b[r * cols + c];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    const double cosine = na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
    if (!(cosine >= m.min_cosine)) m.min_cosine = cosine;
  }
  return m;
}

void add_logit_metrics(ParityMetrics& m, const std::vector<float>& a, const std::vector<float>& b,
                       size_t rows, size_t cols) {
  if (a.size() != rows * cols || b.size() != rows * cols || cols == 0)
    throw std::invalid_argument("add_logit_metrics: tensor sizes do not match their shape");
  size_t agree = 0;
  double kl_sum = 0;
  m.max_kl = 0;
  std::vector<double> la, lb;
  for (size_t r = 0; r < rows; ++r) {
    const float* x = a.data() + r * cols;
    const float* y = b.data() + r * cols;
    agree += std::max_element(x, x + cols) - x == std::max_element(y, y + cols) - y;
    log_softmax(x, cols, la);
    log_softmax(y, cols, lb);
    double kl = 0;
    for (size_t c = 0; c < cols; ++c) kl += std::exp(la[c]) * (la[c] - lb[c]);
    kl = std::max(kl, 0.0);  // rounding can make it a hair negative
    if (std::isnan(kl)) kl = INFINITY;
    kl_sum += kl;
    m.max_kl = std::max(m.max_kl, kl);
  }
  m.argmax_agreement = rows ? double(agree) / double(rows) : 1.0;
  m.kl = rows ? kl_sum / double(rows) : 0.0;
}

}  // namespace fkv::tools
