// The window and fourier KV policies on the CPU backend: zero compressed dims = full attention bit for bit
// (fp32), fused and spectral paths = the reference path, chunked prefill + decode accumulation = projection
// of the whole middle from scratch, memory accounting, and the Backend base class's generic fallback.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "fourier/fourier_profile.h"
#include "fourier/fourier_transform.h"
#include "kv/split_kv_cache.h"
#include "util/error.h"

namespace fkv {
namespace {

AttentionShape test_shape() {
  AttentionShape s;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 16;
  s.scale = 0.25f;
  return s;
}

// Random q, k, v for positions 0 .. len-1, with a slow drift along positions so that the middle is not white
// noise (the Fourier middle has something to represent).
struct Data {
  std::vector<float> q, k, v;
  Data(const AttentionShape& s, int len, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    const int qd = s.n_heads * s.head_dim, kd = s.n_kv_heads * s.head_dim;
    q.resize(size_t(len) * qd);
    k.resize(size_t(len) * kd);
    v.resize(size_t(len) * kd);
    for (float& x : q) x = nd(rng);
    for (int p = 0; p < len; ++p)
      for (int j = 0; j < kd; ++j) {
        k[size_t(p) * kd + j] = std::sin(0.05f * p * (1 + j % 5)) + 0.3f * nd(rng);
        v[size_t(p) * kd + j] = std::cos(0.03f * p * (1 + j % 3)) + 0.3f * nd(rng);
      }
  }
};

struct Runner {
  Backend& be;
  AttentionShape s;
  BufferPtr q, k, v, out;
  explicit Runner(Backend& b, const AttentionShape& shape, int max_n) : be(b), s(shape) {
    q = be.alloc(size_t(max_n) * s.n_heads * s.head_dim * 4, "q");
    k = be.alloc(size_t(max_n) * s.n_kv_heads * s.head_dim * 4, "k");
    v = be.alloc(size_t(max_n) * s.n_kv_heads * s.head_dim * 4, "v");
    out = be.alloc(size_t(max_n) * s.n_heads * s.head_dim * 4, "out");
  }
  void load(const Data& d, int pos0, int n) {
    const size_t qd = size_t(s.n_heads) * s.head_dim, kd = size_t(s.n_kv_heads) * s.head_dim;
    be.upload(*q, 0, d.q.data() + pos0 * qd, n * qd * 4);
    be.upload(*k, 0, d.k.data() + pos0 * kd, n * kd * 4);
    be.upload(*v, 0, d.v.data() + pos0 * kd, n * kd * 4);
  }
  // Runs positions pos0 .. pos0+n-1 through one layer of `cache`; returns the attention output.
  std::vector<float> step(KvCache& cache, const Data& d, int pos0, int n) {
    load(d, pos0, n);
    cache.store(0, *k, *v, n, pos0);
    cache.attend(0, *q, n, pos0, *out);
    cache.flush();  // the chunk enters the cache (before load() overwrites k and v)
    std::vector<float> o(size_t(n) * s.n_heads * s.head_dim);
    be.download(*out, 0, o.data(), o.size() * 4);
    return o;
  }
};

// Chunk sizes: a prefill in uneven chunks, then single-token decode.
std::vector<int> schedule(int prompt, int decode) {
  std::vector<int> sizes;
  for (int done = 0, c = 37; done < prompt; done += c) sizes.push_back(std::min(c, prompt - done));
  for (int i = 0; i < decode; ++i) sizes.push_back(1);
  return sizes;
}

SplitKvConfig fourier_config(const AttentionShape& s, int capacity, KvType type, double ratio) {
  SplitKvConfig c;
  c.policy = "fourier";
  c.n_layers = 1;
  c.shape = s;
  c.capacity = capacity;
  c.type = type;
  c.sink = 4;
  c.window = 24;
  c.n_freq = 32;
  c.fit_tokens = 40;
  if (ratio > 0) {
    const FourierProfile p = heuristic_fourier_profile(1, s.n_kv_heads, s.head_dim, ratio);
    c.k_dims.push_back(split_dims(p.layers[0].k, s.head_dim));
    c.v_dims.push_back(split_dims(p.layers[0].v, s.head_dim));
  }
  return c;
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / std::max(den, 1e-30);
}

TEST(KvSplitCache, DeviceDimsTableListsEachEntrysElement) {
  SplitKvDims d;  // head 0 keeps 1, 3 and compresses 0, 2; head 1 keeps 0 and compresses 1, 2, 3
  d.keep_offset = {0, 2, 3};
  d.keep = {1, 3, 0};
  d.comp_offset = {0, 2, 5};
  d.comp = {0, 2, 1, 2, 3};
  const std::vector<int> want = {0, 2, 3, 0, 2, 5, 1, 3, 0, 0, 2, 1, 2, 3,  // the lists
                                 1, 3, 4, 0, 2, 5, 6, 7};                   // elements, head_dim 4
  EXPECT_EQ(d.device_table(4), want);
  EXPECT_EQ(SplitKvDims{}.device_table(4), std::vector<int>{});
}

TEST(KvSplitCache, NoCompressedDimsIsFullAttentionBitForBit) {
  auto be = create_cpu_backend(2);
  const AttentionShape s = test_shape();
  const int cap = 200;
  Data d(s, cap, 11);
  auto full = make_full_kv_cache(*be, 1, s, cap, KvType::kF32);
  SplitKvCache fourier(*be, fourier_config(s, cap, KvType::kF32, 0));
  Runner r(*be, s, 64);
  int pos = 0;
  for (int n : schedule(150, 40)) {
    const auto a = r.step(*full, d, pos, n);
    const auto b = r.step(fourier, d, pos, n);
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "positions " << pos << "+" << n;
    pos += n;
  }
  EXPECT_TRUE(fourier.layer(0).fitted(pos));
}

TEST(KvSplitCache, FusedAndSpectralMatchReference) {
  for (bool least_squares : {false, true}) {
    SCOPED_TRACE(least_squares ? "lsq normalisation" : "range normalisation");
    auto be = create_cpu_backend(2);
    const AttentionShape s = test_shape();
    const int cap = 260;
    Data d(s, cap, 5);
    SplitKvConfig cfg = fourier_config(s, cap, KvType::kF16, 0.75);
    cfg.least_squares_norm = least_squares;
    SplitKvCache cache(*be, cfg);
    Runner r(*be, s, 64);
    int pos = 0;
    for (int n : schedule(180, 20)) {
      r.step(cache, d, pos, n);
      pos += n;
    }
    const SplitKvLayer& L = cache.layer(0);
    ASSERT_TRUE(L.fitted(pos));
    ASSERT_GT(L.k.dims.n_comp(), 0);
    for (int n : {1, 7}) {
      r.load(d, pos, n);
      auto run = [&](SplitAttentionPath path) {
        be->split_attention(*r.q, *r.k, *r.v, n, pos, s, L, path, *r.out);
        std::vector<float> o(size_t(n) * s.n_heads * s.head_dim);
        be->download(*r.out, 0, o.data(), o.size() * 4);
        return o;
      };
      const auto ref = run(SplitAttentionPath::kReference);
      EXPECT_LT(rel_diff(run(SplitAttentionPath::kFused), ref), 1e-5) << "n = " << n;
      EXPECT_LT(rel_diff(run(SplitAttentionPath::kSpectral), ref), 1e-4) << "n = " << n;
    }
  }
}

// fkv's least-squares normalisation (KvOptions::fourier_norm = "lsq"): after a refit, x̂ = a·x̃ + b is the
// affine map of the reconstruction that is closest to the true middle values, although the cache never keeps
// those values (Σ x·x̃ comes from the coefficients by Parseval).
TEST(KvSplitCache, LeastSquaresNormIsTheBestAffineFit) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  SplitKvConfig cfg = fourier_config(s, 0, KvType::kF32, 0.8);
  cfg.capacity = cfg.sink + cfg.window + 2 * cfg.fit_tokens;  // the middle ends on its first refit
  cfg.least_squares_norm = true;
  const int cap = cfg.capacity;
  Data d(s, cap, 21);
  SplitKvCache cache(*be, cfg);
  Runner r(*be, s, 64);
  int pos = 0;
  for (int n : schedule(cap - 30, 30)) {
    r.step(cache, d, pos, n);
    pos += n;
  }
  const SplitKvLayer& L = cache.layer(0);
  const int M = L.middle_len(pos), kd = s.n_kv_heads * s.head_dim;
  ASSERT_EQ(M, 2 * cfg.fit_tokens);
  for (int part = 0; part < 2; ++part) {
    SCOPED_TRACE(part == 0 ? "K" : "V");
    const SplitKvPart& P = part == 0 ? L.k : L.v;
    const std::vector<float>& src = part == 0 ? d.k : d.v;
    const int nc = P.dims.n_comp();
    ASSERT_GT(nc, 0);
    std::vector<float> coef(size_t(nc) * 2 * L.n_freq), norm(size_t(nc) * kSplitNormStride),
        rec(size_t(M) * nc);
    be->download(*P.coef, 0, coef.data(), coef.size() * 4);
    be->download(*P.norm, 0, norm.data(), norm.size() * 4);
    FourierBasis basis(L.middle, L.n_freq);
    fourier_reconstruct(basis, coef.data(), nc, 0, M, rec.data());
    for (int g = 0; g < s.n_kv_heads; ++g)
      for (int i = P.dims.comp_offset[g]; i < P.dims.comp_offset[g + 1]; ++i) {
        double sx = 0, sr = 0, srr = 0, sxr = 0;
        for (int m = 0; m < M; ++m) {
          const double x = src[size_t(cfg.sink + m) * kd + g * s.head_dim + P.dims.comp[i]];
          const double xr = rec[size_t(m) * nc + i];
          sx += x, sr += xr, srr += xr * xr, sxr += x * xr;
        }
        const double mx = sx / M, mr = sr / M;
        const double a = (sxr / M - mx * mr) / (srr / M - mr * mr), b = mx - a * mr;
        const float* st = norm.data() + size_t(i) * kSplitNormStride;
        const RangeNorm have{st[0], st[1], st[2], st[3]};
        EXPECT_NEAR(have.a(), a, 1e-3 * std::max(1.0, std::fabs(a))) << "dim " << i;
        EXPECT_NEAR(have.b(), b, 1e-3 * std::max(1.0, std::fabs(b))) << "dim " << i;
      }
  }
}

TEST(KvSplitCache, AccumulationEqualsProjectionFromScratch) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  const int cap = 230;
  Data d(s, cap, 9);
  SplitKvConfig cfg = fourier_config(s, cap, KvType::kF32, 0.8);
  SplitKvCache cache(*be, cfg);
  Runner r(*be, s, 64);
  int pos = 0;
  for (int n : schedule(120, cap - 120)) {  // the middle forms during prefill and grows during decode
    r.step(cache, d, pos, n);
    pos += n;
  }
  const SplitKvLayer& L = cache.layer(0);
  const int M = L.middle_len(pos), kd = s.n_kv_heads * s.head_dim;
  ASSERT_EQ(M, cap - cfg.sink - cfg.window);
  for (int part = 0; part < 2; ++part) {
    const SplitKvPart& P = part == 0 ? L.k : L.v;
    const std::vector<float>& src = part == 0 ? d.k : d.v;
    const int nc = P.dims.n_comp();
    // The compressed values of every middle position, at its true position, projected at once.
    std::vector<float> vals(size_t(M) * nc);
    for (int m = 0; m < M; ++m)
      for (int g = 0; g < s.n_kv_heads; ++g)
        for (int i = P.dims.comp_offset[g]; i < P.dims.comp_offset[g + 1]; ++i)
          vals[size_t(m) * nc + i] = src[size_t(cfg.sink + m) * kd + g * s.head_dim + P.dims.comp[i]];
    FourierBasis basis(L.middle, L.n_freq);
    std::vector<float> scratch(size_t(nc) * 2 * L.n_freq);
    fourier_project(basis, vals.data(), M, nc, nc, 0, scratch.data());
    std::vector<float> have(scratch.size());
    be->download(*P.coef, 0, have.data(), have.size() * 4);
    EXPECT_LT(rel_diff(have, scratch), 1e-5) << (part == 0 ? "K" : "V");
    // The range normalisation: last refitted when the middle reached fit·2^k <= M, over those rows.
    int last = L.fit_tokens;
    while (last * 2 <= M) last *= 2;
    std::vector<float> coef_fit(scratch.size()), norm_fit(size_t(nc) * 4);
    fourier_fit(basis, vals.data(), last, nc, nc, coef_fit.data(), norm_fit.data());
    std::vector<float> norm_have(size_t(nc) * kSplitNormStride), got(norm_fit.size());
    be->download(*P.norm, 0, norm_have.data(), norm_have.size() * 4);
    for (int j = 0; j < nc; ++j)
      for (int i = 0; i < 4; ++i) got[size_t(j) * 4 + i] = norm_have[size_t(j) * kSplitNormStride + i];
    EXPECT_LT(rel_diff(got, norm_fit), 1e-5);
  }
}

TEST(KvSplitCache, WindowPolicyIsAttentionOverSinkAndRecentTokens) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  const int cap = 120, S = 3, W = 20;
  Data d(s, cap, 2);
  SplitKvConfig cfg;
  cfg.policy = "window";
  cfg.n_layers = 1;
  cfg.shape = s;
  cfg.capacity = cap;
  cfg.type = KvType::kF32;
  cfg.sink = S;
  cfg.window = W;
  SplitKvCache cache(*be, cfg);
  Runner r(*be, s, 64);
  int pos = 0;
  for (int n : schedule(90, 30)) {
    const auto got = r.step(cache, d, pos, n);
    // Expected: query i sees 0..S-1, then max(S, pos-W) .. pos+i.
    const int d_ = s.head_dim, group = s.n_heads / s.n_kv_heads, kd = s.n_kv_heads * d_;
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < s.n_heads; ++h) {
        std::vector<int> rows;
        for (int p = 0; p < std::min(S, pos + i + 1); ++p) rows.push_back(p);
        for (int p = std::max(S, pos - W); p <= pos + i; ++p) rows.push_back(p);
        std::vector<double> sc;
        double mx = -1e30;
        for (int p : rows) {
          double dot = 0;
          for (int j = 0; j < d_; ++j)
            dot +=
                d.q[(size_t(pos + i) * s.n_heads + h) * d_ + j] * d.k[size_t(p) * kd + (h / group) * d_ + j];
          sc.push_back(dot * s.scale);
          mx = std::max(mx, sc.back());
        }
        double tot = 0;
        for (double& x : sc) tot += x = std::exp(x - mx);
        for (int j = 0; j < d_; ++j) {
          double o = 0;
          for (size_t t = 0; t < rows.size(); ++t)
            o += sc[t] * d.v[size_t(rows[t]) * kd + (h / group) * d_ + j];
          EXPECT_NEAR(got[(size_t(i) * s.n_heads + h) * d_ + j], o / tot, 1e-5);
        }
      }
    pos += n;
  }
  const KvMemoryReport m = cache.memory(pos);
  EXPECT_EQ(m.sink, size_t(2 * S * s.n_kv_heads * s.head_dim * 4));
  EXPECT_EQ(m.window, size_t(2 * W * s.n_kv_heads * s.head_dim * 4));
  EXPECT_EQ(m.middle_kept + m.coefficients + m.middle_pending, 0u);
}

TEST(KvSplitCache, MemoryReportCountsEveryPart) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  const int cap = 200;
  SplitKvConfig cfg = fourier_config(s, cap, KvType::kF16, 0.75);
  SplitKvCache cache(*be, cfg);
  const SplitKvLayer& L = cache.layer(0);
  const size_t nk = size_t(L.k.dims.n_keep() + L.v.dims.n_keep()),
               nc = size_t(L.k.dims.n_comp() + L.v.dims.n_comp());
  const size_t row = size_t(s.n_kv_heads) * s.head_dim * 2;
  KvMemoryReport before = cache.memory(cfg.sink + cfg.window + 10);  // 10 middle rows, not fitted
  EXPECT_EQ(before.middle_kept, 10 * nk * 2);
  EXPECT_EQ(before.middle_pending, 10 * nc * 4);
  EXPECT_EQ(before.coefficients, 0u);
  KvMemoryReport after = cache.memory(cap);
  EXPECT_EQ(after.sink, 2 * row * cfg.sink);
  EXPECT_EQ(after.window, 2 * row * cfg.window);
  EXPECT_EQ(after.middle_kept, size_t(cap - cfg.sink - cfg.window) * nk * 2);
  EXPECT_EQ(after.coefficients, nc * (2 * cfg.n_freq + kSplitNormStride) * 4);
  EXPECT_EQ(after.middle_pending, 0u);
}

// A backend with no split-cache kernels of its own: the Backend base class's download/compute/upload
// fallback.
class FallbackBackend : public Backend {
 public:
  FallbackBackend() : cpu_(create_cpu_backend(1)) {}
  std::string name() const override { return "fallback"; }
  std::string device_name() const override { return "test"; }
  BufferPtr alloc(size_t bytes, const std::string& what) override { return cpu_->alloc(bytes, what); }
  void upload(DeviceBuffer& dst, size_t o, const void* src, size_t n) override {
    cpu_->upload(dst, o, src, n);
  }
  void download(const DeviceBuffer& src, size_t o, void* dst, size_t n) override {
    cpu_->download(src, o, dst, n);
  }
  void copy(const DeviceBuffer& a, size_t ao, DeviceBuffer& b, size_t bo, size_t n) override {
    cpu_->copy(a, ao, b, bo, n);
  }
  void synchronize() override {}
  void embed(const Weight&, const DeviceBuffer&, int, DeviceBuffer&) override {}
  void rms_norm(const DeviceBuffer&, const DeviceBuffer&, int, int, float, DeviceBuffer&) override {}
  void matmul(const Weight&, const DeviceBuffer&, int, DeviceBuffer&) override {}
  void rope(DeviceBuffer&, int, int, int, const RopeParams&) override {}
  void swiglu(const DeviceBuffer&, const DeviceBuffer&, int64_t, DeviceBuffer&) override {}
  void add(const DeviceBuffer&, const DeviceBuffer&, int64_t, DeviceBuffer&) override {}
  void kv_store(const DeviceBuffer&, const DeviceBuffer&, int, int, const AttentionShape&,
                KvLayer&) override {}
  void attention(const DeviceBuffer&, int, int, const AttentionShape&, const KvLayer&,
                 DeviceBuffer&) override {}

 private:
  std::unique_ptr<Backend> cpu_;
};

TEST(KvSplitCache, GenericBackendFallbackMatchesCpu) {
  auto cpu = create_cpu_backend(1);
  FallbackBackend fb;
  const AttentionShape s = test_shape();
  const int cap = 160;
  Data d(s, cap, 4);
  SplitKvCache a(*cpu, fourier_config(s, cap, KvType::kF16, 0.75));
  SplitKvCache b(fb, fourier_config(s, cap, KvType::kF16, 0.75));
  Runner ra(*cpu, s, 64), rb(fb, s, 64);
  int pos = 0;
  for (int n : schedule(100, 30)) {
    const auto x = ra.step(a, d, pos, n);
    const auto y = rb.step(b, d, pos, n);
    ASSERT_LT(rel_diff(y, x), 1e-6) << "positions " << pos << "+" << n;
    pos += n;
  }
}

// store() keeps the caller's k and v (no copy) until the next store() or flush(): a chunk stored without
// attend() and flushed becomes the same cache as one that attended, even when the caller's buffers change
// right after the flush.
TEST(KvSplitCache, StoreWithoutAttendThenFlushKeepsTheChunk) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  const int cap = 160;
  Data d(s, cap, 9);
  SplitKvCache attended(*be, fourier_config(s, cap, KvType::kF16, 0.75));
  SplitKvCache flushed(*be, fourier_config(s, cap, KvType::kF16, 0.75));
  Runner r(*be, s, 64);
  int pos = 0;
  for (int n : schedule(100, 0)) {
    r.step(attended, d, pos, n);
    r.load(d, pos, n);
    flushed.store(0, *r.k, *r.v, n, pos);
    flushed.flush();
    const std::vector<float> junk(size_t(n) * s.n_kv_heads * s.head_dim, 1e4f);
    be->upload(*r.k, 0, junk.data(), junk.size() * 4);
    be->upload(*r.v, 0, junk.data(), junk.size() * 4);
    pos += n;
  }
  for (int i = 0; i < 20; ++i, ++pos) {
    const auto a = r.step(attended, d, pos, 1);
    const auto b = r.step(flushed, d, pos, 1);
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "position " << pos;
  }
}

TEST(KvSplitCache, RejectsOutOfOrderPositions) {
  auto be = create_cpu_backend(1);
  const AttentionShape s = test_shape();
  SplitKvCache cache(*be, fourier_config(s, 100, KvType::kF32, 0.5));
  Data d(s, 100, 1);
  Runner r(*be, s, 8);
  r.step(cache, d, 0, 8);
  EXPECT_THROW(r.step(cache, d, 4, 4), Error);
  cache.clear();
  EXPECT_NO_THROW(r.step(cache, d, 0, 4));
}

}  // namespace
}  // namespace fkv
