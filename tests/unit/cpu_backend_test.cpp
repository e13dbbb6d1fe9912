// The CPU backend defines each op; these tests pin its semantics against plain double-precision formulas
// written independently here, on random inputs and odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "model/quant.h"
#include "util/error.h"
#include "util/half.h"

namespace fkv {
namespace {

class CpuBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = create_cpu_backend(2);
  std::mt19937 rng{1234};

  std::vector<float> random(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  }
  BufferPtr buffer(const std::vector<float>& v) {
    auto b = be->alloc(v.size() * 4, "test");
    be->upload(*b, 0, v.data(), v.size() * 4);
    return b;
  }
  BufferPtr poisoned(size_t n) { return buffer(std::vector<float>(n, NAN)); }
  std::vector<float> read(const DeviceBuffer& b, size_t n) {
    std::vector<float> v(n);
    be->download(b, 0, v.data(), n * 4);
    return v;
  }
};

double rel_error(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST_F(CpuBackendTest, MatmulF32MatchesDoublePrecision) {
  const int rows = 37, cols = 71, n = 5;
  auto w = random(size_t(rows) * cols), x = random(size_t(n) * cols);
  auto wb = buffer(w), xb = buffer(x), out = poisoned(size_t(n) * rows);
  be->matmul(Weight{wb.get(), GgmlType::F32, rows, cols}, *xb, n, *out);
  std::vector<double> want(size_t(n) * rows);
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int c = 0; c < cols; ++c) s += double(w[size_t(r) * cols + c]) * x[size_t(i) * cols + c];
      want[size_t(i) * rows + r] = s;
    }
  EXPECT_LT(rel_error(read(*out, want.size()), want), 1e-6);
}

TEST_F(CpuBackendTest, RmsNormMatchesFormula) {
  const int n = 3, dim = 19;
  auto x = random(size_t(n) * dim), w = random(dim);
  auto xb = buffer(x), wb = buffer(w), out = poisoned(x.size());
  be->rms_norm(*xb, *wb, n, dim, 1e-5f, *out);
  std::vector<double> want(x.size());
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += double(x[size_t(i) * dim + j]) * x[size_t(i) * dim + j];
    const double s = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int j = 0; j < dim; ++j) want[size_t(i) * dim + j] = x[size_t(i) * dim + j] * s * w[size_t(j)];
  }
  EXPECT_LT(rel_error(read(*out, x.size()), want), 1e-6);
}

TEST_F(CpuBackendTest, RopeRotatesAdjacentPairs) {
  const int n = 4, heads = 3, hd = 8, pos0 = 5;
  RopeParams p;
  p.head_dim = hd;
  p.theta = 10000.0f;
  auto x = random(size_t(n) * heads * hd);
  auto xb = buffer(x);
  be->rope(*xb, n, heads, pos0, p);
  auto got = read(*xb, x.size());
  std::vector<double> want(x.size());
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h)
      for (int k = 0; k < hd / 2; ++k) {
        const double angle = (pos0 + i) * std::pow(10000.0, -2.0 * k / hd);
        const size_t at = (size_t(i) * heads + h) * hd + 2 * k;
        want[at] = x[at] * std::cos(angle) - x[at + 1] * std::sin(angle);
        want[at + 1] = x[at] * std::sin(angle) + x[at + 1] * std::cos(angle);
      }
  EXPECT_LT(rel_error(got, want), 1e-5);
}

TEST_F(CpuBackendTest, Llama3RopeScalingKeepsHighAndDividesLowFrequencies) {
  RopeParams p;
  p.head_dim = 128;
  p.theta = 500000.0f;
  p.llama3 = true;
  p.factor = 8;
  p.low_freq_factor = 1;
  p.high_freq_factor = 4;
  p.original_context = 8192;
  RopeParams plain = p;
  plain.llama3 = false;
  EXPECT_FLOAT_EQ(rope_frequency(p, 0), rope_frequency(plain, 0));           // wavelength 2*pi: kept
  EXPECT_FLOAT_EQ(rope_frequency(p, 63), rope_frequency(plain, 63) / 8.0f);  // longest wavelength: divided
}

TEST_F(CpuBackendTest, RopeFreqFactorsDivideEachPairsFrequency) {
  RopeParams p;
  p.head_dim = 8;
  p.theta = 10000.0f;
  RopeParams plain = p;
  p.freq_factors = {1.0f, 2.0f, 4.0f, 8.0f};
  for (int k = 0; k < 4; ++k) EXPECT_FLOAT_EQ(rope_frequency(p, k), rope_frequency(plain, k) / p.freq_factors[size_t(k)]);
}

TEST_F(CpuBackendTest, AttentionMatchesSoftmaxFormulaWithGqa) {
  AttentionShape s;
  s.n_heads = 6;
  s.n_kv_heads = 2;
  s.head_dim = 16;
  s.scale = 0.25f;
  const int n = 3, pos0 = 9, len = pos0 + n;
  const size_t kv_row = size_t(s.n_kv_heads) * s.head_dim;
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    auto k = random(size_t(len) * kv_row), v = random(size_t(len) * kv_row);
    auto q = random(size_t(n) * s.n_heads * s.head_dim);
    auto kc = be->alloc(size_t(len) * kv_row * kv_type_bytes(type), "k");
    auto vc = be->alloc(size_t(len) * kv_row * kv_type_bytes(type), "v");
    KvLayer cache{kc.get(), vc.get(), type, len};
    be->kv_store(*buffer(k), *buffer(v), len, 0, s, cache);
    auto out = poisoned(q.size());
    be->attention(*buffer(q), n, pos0, s, cache, *out);
    // The reference reads the cache values as stored (f16-rounded when the cache is f16).
    auto stored = [&](float x) { return type == KvType::kF16 ? half_to_float(float_to_half(x)) : x; };
    std::vector<double> want(q.size());
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < s.n_heads; ++h) {
        const int kvh = h / (s.n_heads / s.n_kv_heads);
        const float* qi = &q[(size_t(i) * s.n_heads + h) * s.head_dim];
        std::vector<double> p(size_t(pos0 + i + 1));
        double mx = -1e300, total = 0;
        for (size_t t = 0; t < p.size(); ++t) {
          double dot = 0;
          for (int j = 0; j < s.head_dim; ++j) dot += qi[j] * double(stored(k[t * kv_row + kvh * s.head_dim + j]));
          p[t] = dot * s.scale;
          mx = std::max(mx, p[t]);
        }
        for (auto& x : p) total += x = std::exp(x - mx);
        for (int j = 0; j < s.head_dim; ++j) {
          double acc = 0;
          for (size_t t = 0; t < p.size(); ++t) acc += p[t] * stored(v[t * kv_row + kvh * s.head_dim + j]);
          want[(size_t(i) * s.n_heads + h) * s.head_dim + j] = acc / total;
        }
      }
    EXPECT_LT(rel_error(read(*out, q.size()), want), 1e-5) << (type == KvType::kF16 ? "f16" : "f32");
  }
}

TEST_F(CpuBackendTest, KvStoreRefusesToWritePastTheCache) {
  AttentionShape s;
  s.n_heads = s.n_kv_heads = 1;
  s.head_dim = 4;
  auto kc = be->alloc(4 * 4 * 2, "k"), vc = be->alloc(4 * 4 * 2, "v");
  KvLayer cache{kc.get(), vc.get(), KvType::kF16, 4};
  auto k = buffer(random(8));
  EXPECT_THROW(be->kv_store(*k, *k, 2, 3, s, cache), Error);
}

TEST_F(CpuBackendTest, SwigluAndAdd) {
  auto g = random(33), u = random(33);
  auto out = poisoned(33);
  be->swiglu(*buffer(g), *buffer(u), 33, *out);
  auto got = read(*out, 33);
  for (int i = 0; i < 33; ++i) EXPECT_NEAR(got[size_t(i)], g[size_t(i)] / (1 + std::exp(-double(g[size_t(i)]))) * u[size_t(i)], 1e-6);
  be->add(*buffer(g), *buffer(u), 33, *out);
  got = read(*out, 33);
  for (int i = 0; i < 33; ++i) EXPECT_FLOAT_EQ(got[size_t(i)], g[size_t(i)] + u[size_t(i)]);
}

TEST_F(CpuBackendTest, EmbedRejectsOutOfRangeIds) {
  auto table = buffer(random(4 * 8));
  Weight w{table.get(), GgmlType::F32, 4, 8};
  const int32_t ids[2] = {3, 4};
  auto tok = be->alloc(8, "tokens");
  be->upload(*tok, 0, ids, 8);
  auto out = poisoned(16);
  EXPECT_THROW(be->embed(w, *tok, 2, *out), Error);
}

TEST_F(CpuBackendTest, OversizedAllocationIsAnOutOfMemoryError) {
  try {
    be->alloc(size_t(1) << 60, "a huge test buffer");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("a huge test buffer"), std::string::npos);
  }
}

}  // namespace
}  // namespace fkv
