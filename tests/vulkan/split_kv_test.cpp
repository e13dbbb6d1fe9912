// The split-cache ops (window and fourier KV policies) on Vulkan against the CPU reference: fourier_project
// and fourier_accumulate on random rows; split_kv_append through prefill chunks and decode steps that cross
// the fit and refits (inside one call and across calls), every cache buffer compared after each call; and
// split_attention over cache states built by the CPU (middle lengths 0, 1, 257, 5000; before and after the
// fit; kept fractions 0, 20%, 100%; head_dim 64 and 128; GQA; decode and prefill chunks; f32 and f16).
// Vulkan outputs start poisoned (NaN) so that anything a shader fails to write shows up.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>

#include "backend/vulkan/vulkan_kept_layout.h"
#include "util/half.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

struct CacheCase {
  int n_heads, n_kv_heads, head_dim;
  int sink, window, middle, n_freq, fit;
  double keep;  // fraction of each head's dims kept exact
  KvType type;
  bool lsq = false;
};

// Per head, round(keep·d) dims kept (random), the rest compressed; ascending lists.
SplitKvDims make_dims(int n_kv, int d, double keep, uint32_t seed) {
  std::mt19937 rng(seed);
  SplitKvDims dims;
  dims.keep_offset.push_back(0);
  dims.comp_offset.push_back(0);
  for (int g = 0; g < n_kv; ++g) {
    std::vector<int> all(static_cast<size_t>(d));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const int nk = int(std::lround(keep * d));
    std::vector<int> kept(all.begin(), all.begin() + nk), comp(all.begin() + nk, all.end());
    std::sort(kept.begin(), kept.end());
    std::sort(comp.begin(), comp.end());
    dims.keep.insert(dims.keep.end(), kept.begin(), kept.end());
    dims.comp.insert(dims.comp.end(), comp.begin(), comp.end());
    dims.keep_offset.push_back(int(dims.keep.size()));
    dims.comp_offset.push_back(int(dims.comp.size()));
  }
  return dims;
}

// One layer's split cache on a backend, allocated like SplitKvCache does (absent parts are nullptr).
struct TestCache {
  std::vector<BufferPtr> owned;
  SplitKvLayer L;
  DeviceBuffer* alloc(Backend& be, size_t bytes, bool poison) {
    if (bytes == 0) return nullptr;
    owned.push_back(be.alloc(bytes, "split cache part"));
    if (poison) {
      std::vector<uint8_t> nan(bytes, 0xFF);
      be.upload(*owned.back(), 0, nan.data(), bytes);
    }
    return owned.back().get();
  }
  TestCache(Backend& be, const CacheCase& c, bool poison) {
    L.type = c.type;
    L.sink = c.sink;
    L.window = c.window;
    L.middle = c.middle;
    L.n_freq = c.n_freq;
    L.fit_tokens = c.middle > 0 ? std::max(1, std::min(c.middle, c.fit)) : 0;
    L.least_squares_norm = c.lsq;
    const size_t tb = kv_type_bytes(c.type), row = size_t(c.n_kv_heads) * c.head_dim * tb;
    for (int part = 0; part < 2; ++part) {
      SplitKvPart& P = part == 0 ? L.k : L.v;
      P.sink = alloc(be, row * c.sink, poison);
      P.window = alloc(be, row * c.window, poison);
      if (c.middle <= 0) continue;
      P.dims = make_dims(c.n_kv_heads, c.head_dim, c.keep, 100 + part);
      const size_t nk = size_t(P.dims.n_keep()), nc = size_t(P.dims.n_comp());
      P.kept = alloc(be, size_t(c.middle) * size_t(split_kept_row_elements(int(nk))) * tb, poison);
      P.pending = alloc(be, size_t(L.fit_tokens) * nc * 4, poison);
      P.coef = alloc(be, nc * 2 * c.n_freq * 4, poison);
      P.norm = alloc(be, nc * kSplitNormStride * 4, poison);
      const std::vector<int32_t> table = P.dims.device_table(c.head_dim);
      P.dims_table = alloc(be, table.size() * 4, false);
      be.upload(*P.dims_table, 0, table.data(), table.size() * 4);
    }
  }
};

std::vector<float> read_typed(Backend& be, const DeviceBuffer* b, KvType type, size_t first, size_t count) {
  std::vector<float> out(count);
  if (count == 0) return out;
  if (type == KvType::kF32) {
    be.download(*b, first * 4, out.data(), count * 4);
  } else {
    std::vector<uint16_t> h(count);
    be.download(*b, first * 2, h.data(), count * 2);
    for (size_t i = 0; i < count; ++i) out[i] = half_to_float(h[i]);
  }
  return out;
}

std::vector<float> read_f32(Backend& be, const DeviceBuffer* b, size_t first, size_t count) {
  return read_typed(be, b, KvType::kF32, first, count);
}

// The first M kept K rows of a Vulkan cache, row after row ([M, n_keep], as the CPU stores them): Vulkan
// stores K's kept rows by columns (vulkan_kept_layout.h).
std::vector<float> read_vulkan_kept_k(Backend& be, const SplitKvLayer& L, int M) {
  const bool f16 = L.type == KvType::kF16;
  const uint32_t nk = uint32_t(L.k.dims.n_keep()), T = uint32_t(L.middle);
  const uint32_t R = kept_k_columns(T, uint32_t(L.n_freq));
  if (M == 0 || nk == 0) return {};
  std::vector<uint32_t> words(L.k.kept->size() / 4);
  be.download(*L.k.kept, 0, words.data(), words.size() * 4);
  std::vector<float> out;
  for (uint32_t m = 0; m < uint32_t(M); ++m)
    for (uint32_t e = 0; e < nk; ++e) {
      const uint32_t w = words[kept_k_word(m, f16 ? e / 2 : e, T, R)];
      float x;
      if (f16)
        x = half_to_float(uint16_t(e % 2 == 0 ? w & 0xFFFFu : w >> 16));
      else
        std::memcpy(&x, &w, 4);
      out.push_back(x);
    }
  return out;
}

// The CPU cache's kept K rows ([T, n_keep]) into a Vulkan cache's by columns (vulkan_kept_layout.h).
void upload_vulkan_kept_k(Backend& be, const SplitKvLayer& L, Backend& cpu_be, const SplitKvLayer& cpu_L) {
  const bool f16 = L.type == KvType::kF16;
  const uint32_t nk = uint32_t(L.k.dims.n_keep()), T = uint32_t(L.middle);
  const uint32_t R = kept_k_columns(T, uint32_t(L.n_freq)), tb = f16 ? 2 : 4;
  if (nk == 0) return;
  std::vector<uint8_t> rows(size_t(T) * nk * tb);
  if (!rows.empty()) cpu_be.download(*cpu_L.k.kept, 0, rows.data(), rows.size());
  std::vector<uint32_t> words(L.k.kept->size() / 4, 0);
  for (uint32_t m = 0; m < T; ++m)
    for (uint32_t e = 0; e < nk; ++e) {
      uint32_t x = 0;
      std::memcpy(&x, &rows[(size_t(m) * nk + e) * tb], tb);
      uint32_t& w = words[kept_k_word(m, f16 ? e / 2 : e, T, R)];
      w = f16 ? (e % 2 == 0 ? (w & 0xFFFF0000u) | x : (w & 0xFFFFu) | (x << 16)) : x;
    }
  if (!words.empty()) be.upload(*L.k.kept, 0, words.data(), words.size() * 4);
}

// Smooth drift plus noise along positions, so that the middle has something to represent.
std::vector<float> kv_rows(int pos0, int n, int row, uint32_t seed) {
  std::vector<float> x = random_floats(size_t(n) * row, seed, 0.3f);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < row; ++j)
      x[size_t(i) * row + j] += std::sin(0.02f * float(pos0 + i) * float(1 + j % 7));
  return x;
}

// A test name from (label, number) pairs (appended piecewise: GCC 12 warns about "x" + std::to_string()).
std::string name_of(std::initializer_list<std::pair<const char*, int>> parts) {
  std::string out;
  for (const auto& [label, value] : parts) out.append(label).append(std::to_string(value));
  return out;
}

class SplitKvTest : public VulkanTest {
 protected:
  // Every buffer region the cache holds at t positions, Vulkan against CPU.
  // rho_tol: the tolerance of ρ (norm column 1); see AppendLeastSquaresFarFromZero.
  // gpu: the backend that holds a (default: the shared one).
  void compare_state(const CacheCase& c, TestCache& a, TestCache& b, int t, const char* when,
                     double rho_tol = 1e-4, Backend* gpu = nullptr) {
    Backend& g = gpu ? *gpu : *vk;
    const SplitKvLayer& L = b.L;
    const size_t row = size_t(c.n_kv_heads) * c.head_dim;
    for (int part = 0; part < 2; ++part) {
      const SplitKvPart &pa = part == 0 ? a.L.k : a.L.v, &pb = part == 0 ? L.k : L.v;
      SCOPED_TRACE(std::string(when) + (part == 0 ? " K" : " V") + " t=" + std::to_string(t));
      const size_t s_rows = size_t(L.sink_len(t));
      EXPECT_EQ(read_typed(g, pa.sink, c.type, 0, s_rows * row),
                read_typed(*cpu, pb.sink, c.type, 0, s_rows * row));
      for (int p = L.window_begin(t); p < t; ++p) {
        const size_t r = size_t((p - L.sink) % L.window);
        ASSERT_EQ(read_typed(g, pa.window, c.type, r * row, row),
                  read_typed(*cpu, pb.window, c.type, r * row, row))
            << "window position " << p;
      }
      if (L.middle == 0) continue;
      const int M = L.middle_len(t), nk = pb.dims.n_keep(), nc = pb.dims.n_comp();
      EXPECT_EQ(part == 0 ? read_vulkan_kept_k(g, a.L, M) : read_typed(g, pa.kept, c.type, 0, size_t(M) * nk),
                read_typed(*cpu, pb.kept, c.type, 0, size_t(M) * nk));
      const size_t pend = size_t(std::min(M, L.fit_tokens)) * nc;
      EXPECT_EQ(read_f32(g, pa.pending, 0, pend), read_f32(*cpu, pb.pending, 0, pend));
      if (!L.fitted(t) || nc == 0) continue;
      const size_t nco = size_t(nc) * 2 * L.n_freq;
      EXPECT_LT(max_rel_error(read_f32(g, pa.coef, 0, nco), read_f32(*cpu, pb.coef, 0, nco)), 1e-4);
      const std::vector<float> na = read_f32(g, pa.norm, 0, size_t(nc) * 8),
                               nb = read_f32(*cpu, pb.norm, 0, size_t(nc) * 8);
      for (int col = 0; col < 7; ++col) {
        std::vector<float> ca, cb;
        for (int j = 0; j < nc; ++j) {
          ca.push_back(na[size_t(j) * 8 + col]);
          cb.push_back(nb[size_t(j) * 8 + col]);
        }
        EXPECT_LT(max_rel_error(ca, cb), col == 1 ? rho_tol : 1e-4) << "norm column " << col;
      }
    }
  }

  // offset: added to every value (a dim far from zero stresses the fp32 sums of the refit).
  // gpu: the Vulkan backend under test (default: the shared one).
  void run_appends(const CacheCase& c, const std::vector<int>& chunks, float offset = 0.0f,
                   double rho_tol = 1e-4, Backend* gpu = nullptr) {
    Backend& g = gpu ? *gpu : *vk;
    const AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
    TestCache tv(g, c, true), tc(*cpu, c, false);
    const int row = c.n_kv_heads * c.head_dim;
    int pos = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const int n = chunks[i];
      std::vector<float> kr = kv_rows(pos, n, row, uint32_t(11 + i)),
                         vr = kv_rows(pos, n, row, uint32_t(5011 + i));
      for (float& x : kr) x += offset;
      for (float& x : vr) x += offset;
      auto [kv_, kc] = both(kr, "k", &g);
      auto [vv, vc] = both(vr, "v", &g);
      g.split_kv_append(*kv_, *vv, n, pos, s, tv.L);
      cpu->split_kv_append(*kc, *vc, n, pos, s, tc.L);
      pos += n;
      if (i + 1 == chunks.size() || n > 1 || i % 7 == 0)
        compare_state(c, tv, tc, pos, "after append", rho_tol, &g);
    }
  }
};

// ---- fourier_project / fourier_accumulate

struct ProjectCase {
  int rows, n_comp, m0, period, n_freq;
};

class FourierProjectTest : public VulkanTest, public ::testing::WithParamInterface<ProjectCase> {};

TEST_P(FourierProjectTest, ProjectAndAccumulateMatchCpu) {
  const ProjectCase c = GetParam();
  const size_t nco = size_t(c.n_comp) * 2 * c.n_freq;
  auto [xv, xc] = both(random_floats(std::max<size_t>(1, size_t(c.rows) * c.n_comp), 3), "values");
  BufferPtr ov = poisoned(nco * 4, "coef");
  auto [av, ac] = both(random_floats(nco, 4), "coef acc");
  BufferPtr oc = cpu->alloc(nco * 4, "coef");
  vk->fourier_project(*xv, c.rows, c.n_comp, c.m0, c.period, c.n_freq, *ov);
  cpu->fourier_project(*xc, c.rows, c.n_comp, c.m0, c.period, c.n_freq, *oc);
  EXPECT_LT(max_rel_error(read(*vk, *ov, nco), read(*cpu, *oc, nco)), 1e-4);
  vk->fourier_accumulate(*xv, c.rows, c.n_comp, c.m0, c.period, c.n_freq, *av);
  cpu->fourier_accumulate(*xc, c.rows, c.n_comp, c.m0, c.period, c.n_freq, *ac);
  EXPECT_LT(max_rel_error(read(*vk, *av, nco), read(*cpu, *ac, nco)), 1e-4);
}

const ProjectCase kProjectCases[] = {
    {0, 5, 0, 100, 16},       {1, 7, 3, 100, 16},        {257, 37, 0, 3000, 100},
    {1000, 5, 123, 1500, 64}, {40, 3, 4000, 5003, 1024},
};
INSTANTIATE_TEST_SUITE_P(Sizes, FourierProjectTest, ::testing::ValuesIn(kProjectCases), [](const auto& info) {
  const ProjectCase& c = info.param;
  return name_of({{"rows", c.rows}, {"nc", c.n_comp}, {"m", c.m0}, {"T", c.period}, {"N", c.n_freq}});
});

// ---- split_kv_append

TEST_F(SplitKvTest, AppendFitAndRefitInsideOneChunk) {
  // fit at 16 and refits at 32, 64 all inside the first chunk; then decode steps across the refit at 128.
  const CacheCase c{4, 2, 64, 3, 20, 300, 32, 16, 0.2, KvType::kF32};
  std::vector<int> chunks = {100};
  for (int i = 0; i < 50; ++i) chunks.push_back(1);
  run_appends(c, chunks);
}

TEST_F(SplitKvTest, AppendAcrossDecodeStepsF16) {
  // The fit and the refit at 2·fit reached by single-token decode; f16 storage; chunk longer than the window.
  const CacheCase c{9, 3, 64, 4, 24, 200, 40, 12, 0.2, KvType::kF16};
  std::vector<int> chunks = {7, 30};
  for (int i = 0; i < 20; ++i) chunks.push_back(1);
  chunks.push_back(33);
  run_appends(c, chunks);
}

TEST_F(SplitKvTest, AppendDecodeStepsAsTwoDispatches) {
  // A decode step's K and V middle entries as two dispatches (FKV_VULKAN_PAIR_APPEND=0) instead of
  // split_kv_middle_pair.comp's one: the same cases as the two tests above.
  Backend& two = EnvBackends::get({"FKV_VULKAN_PAIR_APPEND=0"});
  std::vector<int> chunks = {100};
  for (int i = 0; i < 50; ++i) chunks.push_back(1);
  run_appends({4, 2, 64, 3, 20, 300, 32, 16, 0.2, KvType::kF32}, chunks, 0.0f, 1e-4, &two);
  chunks = {7, 30};
  for (int i = 0; i < 20; ++i) chunks.push_back(1);
  chunks.push_back(33);
  run_appends({9, 3, 64, 4, 24, 200, 40, 12, 0.2, KvType::kF16}, chunks, 0.0f, 1e-4, &two);
}

TEST_F(SplitKvTest, AppendLeastSquaresAllCompressedHeadDim128) {
  const CacheCase c{8, 2, 128, 2, 8, 100, 20, 10, 0.0, KvType::kF32, true};
  run_appends(c, {5, 9, 1, 1, 13, 1, 1, 1, 40});
}

TEST_F(SplitKvTest, AppendLeastSquaresFarFromZero) {
  // Values around 30 with spread ~1: the least-squares fit's variance and covariance are small differences
  // of large sums. The shader keeps them in float pairs and shifted block sums (plain fp32 sums: ρ off by
  // 1e-3); what is left is the reference's own conditioning: cov = Σ x·x̃/M - μ·μ̃ with μ̃ rounded to float
  // moves by ~1e-4 relative per ulp of μ̃, and μ̃ of the two backends differ by an ulp in some dims.
  const CacheCase c{4, 2, 64, 4, 16, 1200, 64, 64, 0.2, KvType::kF32, true};
  run_appends(c, {200, 300, 1, 1, 100, 500}, 30.0f, 5e-4);
}

TEST_F(SplitKvTest, AppendAllKeptAndWindowPolicy) {
  run_appends({4, 4, 64, 4, 16, 64, 16, 8, 1.0, KvType::kF16}, {3, 10, 1, 1, 20, 1});
  run_appends({4, 2, 64, 4, 16, 0, 0, 0, 0.0, KvType::kF16},
              {3, 10, 1, 1, 20, 1});                                         // window: evicted rows dropped
  run_appends({2, 1, 64, 0, 5, 0, 0, 0, 0.0, KvType::kF32}, {3, 10, 1, 1});  // no sink
}

// ---- split_attention

struct AttnCase {
  CacheCase c;
  int fill;  // positions stored before the call (built by the CPU, copied to Vulkan)
  int n;     // queries in the call
};

class SplitAttentionTest : public SplitKvTest, public ::testing::WithParamInterface<AttnCase> {
 protected:
  // The state of a.fill positions built by the CPU (chunks of up to 512) and copied into the Vulkan cache;
  // the call's q, k, v on both backends; the CPU reference path's output.
  struct State {
    AttentionShape s;
    std::unique_ptr<TestCache> tc, tv;
    BufferPtr qv, qc, kv, kc, vv, vc;
    size_t count = 0;
    std::vector<float> ref;
  };
  State build(const AttnCase& a) {
    const CacheCase& c = a.c;
    State st;
    st.s = AttentionShape{c.n_heads, c.n_kv_heads, c.head_dim, 1.0f / std::sqrt(float(c.head_dim))};
    st.tc = std::make_unique<TestCache>(*cpu, c, false);
    st.tv = std::make_unique<TestCache>(*vk, c, true);
    const int row = c.n_kv_heads * c.head_dim;
    for (int pos = 0; pos < a.fill;) {
      const int n = std::min(512, a.fill - pos);
      const std::vector<float> k = kv_rows(pos, n, row, 7 + pos), v = kv_rows(pos, n, row, 70001 + pos);
      BufferPtr kb = cpu->alloc(k.size() * 4, "k"), vb = cpu->alloc(v.size() * 4, "v");
      cpu->upload(*kb, 0, k.data(), k.size() * 4);
      cpu->upload(*vb, 0, v.data(), v.size() * 4);
      cpu->split_kv_append(*kb, *vb, n, pos, st.s, st.tc->L);
      pos += n;
    }
    for (size_t i = 0; i < st.tc->owned.size(); ++i) {
      std::vector<uint8_t> bytes(st.tc->owned[i]->size());
      cpu->download(*st.tc->owned[i], 0, bytes.data(), bytes.size());
      vk->upload(*st.tv->owned[i], 0, bytes.data(), bytes.size());
    }
    if (c.middle > 0) upload_vulkan_kept_k(*vk, st.tv->L, *cpu, st.tc->L);
    std::tie(st.qv, st.qc) = both(random_floats(size_t(a.n) * c.n_heads * c.head_dim, 31), "q");
    std::tie(st.kv, st.kc) = both(kv_rows(a.fill, a.n, row, 32), "k");
    std::tie(st.vv, st.vc) = both(kv_rows(a.fill, a.n, row, 33), "v");
    st.count = size_t(a.n) * c.n_heads * c.head_dim;
    BufferPtr oc = cpu->alloc(st.count * 4, "out");
    cpu->split_attention(*st.qc, *st.kc, *st.vc, a.n, a.fill, st.s, st.tc->L, SplitAttentionPath::kReference, *oc);
    st.ref = read(*cpu, *oc, st.count);
    return st;
  }
  std::vector<float> run_vk(const AttnCase& a, State& st, SplitAttentionPath path) {
    BufferPtr ov = poisoned(st.count * 4, "out");
    vk->split_attention(*st.qv, *st.kv, *st.vv, a.n, a.fill, st.s, st.tv->L, path, *ov);
    return read(*vk, *ov, st.count);
  }
  // run_vk (spectral) with the environment switch `knob` on (unset) or off ("0") and the GPU profile on: the
  // output, and into `calls` how often each shader ran (the tests prove which path ran).
  std::vector<float> run_switched(const AttnCase& a, State& st, const char* knob, bool on,
                                  std::map<std::string, uint64_t>& calls) {
    if (on)
      unsetenv(knob);
    else
      setenv(knob, "0", 1);
    EXPECT_TRUE(vulkan_set_profile(*vk, true));
    std::vector<float> out = run_vk(a, st, SplitAttentionPath::kSpectral);
    calls.clear();
    for (const VulkanShaderTime& t : vulkan_profile(*vk).shaders) calls[t.name] += t.calls;
    vulkan_set_profile(*vk, false);
    return out;
  }
  // A path behind the environment switch `knob` (on: `on_label`) and the one it replaces (off: `off_label`),
  // each against the CPU reference and the two against each other, at the cache type's tolerance;
  // check_calls(on, calls) checks from the GPU profile which shaders ran (no silent fallback).
  template <typename CheckCalls>
  void expect_switch_agrees(const AttnCase& a, State& st, const char* knob, const char* on_label,
                            const char* off_label, CheckCalls check_calls) {
    const double tol = a.c.type == KvType::kF32 ? 1e-4 : 2e-3;
    std::vector<float> out[2];
    for (int on = 1; on >= 0; --on) {
      SCOPED_TRACE(on ? on_label : off_label);
      std::map<std::string, uint64_t> calls;
      out[on] = run_switched(a, st, knob, on == 1, calls);
      check_calls(on == 1, calls);
      const double err = max_rel_error(out[on], st.ref);
      std::printf("[ split  ] %-16s: max rel error %.2e (tolerance %.0e)\n", on ? on_label : off_label, err,
                  tol);
      EXPECT_LT(err, tol);
    }
    EXPECT_LT(max_rel_error(out[1], out[0]), tol) << on_label << " against " << off_label;
  }
  // The merge with 32 (default), 16, 8 and 4 invocations per compressed V dim (FKV_VULKAN_MERGE_LANES: 8 to
  // 64 dims a workgroup), each against the CPU reference and against the default.
  void expect_merge_lanes_agree(const AttnCase& a, State& st) {
    const double tol = a.c.type == KvType::kF32 ? 1e-4 : 2e-3;
    std::vector<float> base;
    for (const char* lanes : {"32", "16", "8", "4"}) {
      SCOPED_TRACE(std::string("merge lanes ") + lanes);
      setenv("FKV_VULKAN_MERGE_LANES", lanes, 1);
      const std::vector<float> out = run_vk(a, st, SplitAttentionPath::kSpectral);
      const double err = max_rel_error(out, st.ref);
      std::printf("[ split  ] merge lanes %-4s: max rel error %.2e (tolerance %.0e)\n", lanes, err, tol);
      EXPECT_LT(err, tol);
      if (base.empty())
        base = out;
      else
        EXPECT_LT(max_rel_error(out, base), tol);
    }
    unsetenv("FKV_VULKAN_MERGE_LANES");
  }
  void TearDown() override {
    vulkan_set_profile(*vk, false);
    for (const char* knob : {"FKV_VULKAN_MIDDLE_PASS", "FKV_VULKAN_MIDDLE_FFT", "FKV_VULKAN_WINDOW_DECODE",
                             "FKV_VULKAN_INLINE_SUM", "FKV_VULKAN_PREP_WINDOW", "FKV_VULKAN_MERGE_LANES"})
      unsetenv(knob);
    SplitKvTest::TearDown();
  }
};

TEST_P(SplitAttentionTest, MatchesCpu) {
  const AttnCase a = GetParam();
  const CacheCase& c = a.c;
  State st = build(a);
  const TestCache& tc = *st.tc;
  const double tol = c.type == KvType::kF32 ? 1e-4 : 2e-3;
  // Both ways the Vulkan backend evaluates a fitted middle: in the frequency domain (decode's choice) and
  // rebuilt once for the call (prefill's).
  for (SplitAttentionPath path : {SplitAttentionPath::kSpectral, SplitAttentionPath::kReference}) {
    const double err = max_rel_error(run_vk(a, st, path), st.ref);
    std::printf("[ split  ] %s: max rel error %.2e (tolerance %.0e)\n",
                path == SplitAttentionPath::kSpectral ? "spectral" : "rebuilt ", err, tol);
    EXPECT_LT(err, tol) << "middle " << tc.L.middle_len(a.fill)
                        << (tc.L.fitted(a.fill) ? " fitted" : " not fitted")
                        << (path == SplitAttentionPath::kSpectral ? ", spectral" : ", rebuilt");
    if (!tc.L.fitted(a.fill)) break;  // the two differ only over a fitted middle
  }
}

// The decode middle pass (split_middle_scores.comp + split_middle_values.comp) against the CPU reference and
// against the path it replaces (FKV_VULKAN_MIDDLE_PASS=0, the middle inside split_attention.comp); the GPU
// profile proves which ran (no silent fallback).
class SplitMiddlePassTest : public SplitAttentionTest {};

TEST_P(SplitMiddlePassTest, MatchesCpuAndTheSplitPass) {
  const AttnCase a = GetParam();
  State st = build(a);
  ASSERT_TRUE(st.tc->L.fitted(a.fill)) << "the case must have a fitted middle";
  expect_switch_agrees(a, st, "FKV_VULKAN_MIDDLE_PASS", "middle pass", "split pass",
                       [&](bool mp, std::map<std::string, uint64_t>& calls) {
                         EXPECT_EQ(calls["split_middle_scores"], mp ? 1u : 0u);
                         EXPECT_EQ(calls["split_middle_values"], mp ? 1u : 0u);
                         // With the middle pass, a decode step's sink and window go to
                         // split_window_decode.comp (every shape here fits it); without, split_attention.comp
                         // takes the middle too.
                         const bool window_decode = mp && a.n == 1;
                         EXPECT_EQ(calls["split_window_decode"], window_decode ? 1u : 0u);
                         EXPECT_EQ(calls["split_attention"], window_decode ? 0u : 1u);
                         // (split_merge_sum.comp, or its sum inside the merge: SplitInlineSumTest)
                         EXPECT_EQ(calls["split_attention_merge"], 1u);
                       });
}

// A decode step's sink, window and own row in split_window_decode.comp against the CPU reference and against
// split_attention.comp (FKV_VULKAN_WINDOW_DECODE=0); the GPU profile proves which ran.
class SplitWindowDecodeTest : public SplitAttentionTest {};

TEST_P(SplitWindowDecodeTest, MatchesCpuAndSplitAttention) {
  const AttnCase a = GetParam();
  State st = build(a);
  expect_switch_agrees(a, st, "FKV_VULKAN_WINDOW_DECODE", "window decode", "split_attention",
                       [](bool on, std::map<std::string, uint64_t>& calls) {
                         EXPECT_EQ(calls["split_window_decode"], on ? 1u : 0u);
                         EXPECT_EQ(calls["split_attention"], on ? 0u : 1u);
                       });
}

// {heads, kv heads, d, S, W, T, N, fit, keep, type}, fill, n = 1: the window not full, full, after a fitted
// middle (the middle pass beside), no sink, odd sink and window lengths, G 1..8, f16 and f32.
const AttnCase kWindowDecodeCases[] = {
    {{9, 3, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF32}, 30, 1},            // no middle yet
    {{4, 2, 64, 4, 32, 0, 0, 0, 0.0, KvType::kF16}, 100, 1},               // window policy
    {{4, 4, 64, 0, 48, 300, 32, 32, 0.2, KvType::kF32}, 20, 1},            // no sink, G 1
    {{6, 3, 64, 3, 37, 400, 32, 64, 0.2, KvType::kF16}, 250, 1},           // S 3, W 37, fitted middle
    {{16, 2, 128, 4, 40, 900, 64, 64, 0.3, KvType::kF32}, 700, 1},         // G 8, d 128, f32
    {{8, 2, 128, 4, 64, 600, 128, 128, 0.2, KvType::kF16}, 325, 1},        // d 128, f16
    {{32, 8, 128, 4, 1020, 2000, 128, 256, 0.24, KvType::kF16}, 1700, 1},  // 8B shape, W 1020
};

INSTANTIATE_TEST_SUITE_P(Shapes, SplitWindowDecodeTest, ::testing::ValuesIn(kWindowDecodeCases),
                         [](const auto& info) {
                           const AttnCase& a = info.param;
                           const CacheCase& c = a.c;
                           return name_of({{"h", c.n_heads},
                                           {"kv", c.n_kv_heads},
                                           {"d", c.head_dim},
                                           {"S", c.sink},
                                           {"W", c.window},
                                           {"fill", a.fill}}) +
                                  (c.type == KvType::kF16 ? "f16" : "f32");
                         });

// {heads, kv heads, d, S, W, T, N, fit, keep, type}, fill, n
const AttnCase kAttnCases[] = {
    {{9, 3, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF32}, 30, 1},      // no middle yet (window not full)
    {{9, 3, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF32}, 37, 1},      // middle 1, before the fit
    {{9, 3, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF16}, 80, 1},      // middle 44, before the fit
    {{9, 3, 64, 4, 32, 400, 64, 256, 0.2, KvType::kF32}, 293, 1},    // middle 257, fitted
    {{8, 2, 128, 4, 64, 600, 128, 128, 0.2, KvType::kF16}, 325, 1},  // middle 257, head_dim 128
    {{4, 1, 64, 4, 16, 300, 1024, 256, 0.0, KvType::kF32}, 277, 1},  // N 1024, all compressed
    {{4, 2, 64, 4, 16, 300, 16, 32, 1.0, KvType::kF32}, 277, 1},     // all kept
    {{2, 1, 64, 4, 64, 5100, 16, 256, 0.2, KvType::kF32}, 5068, 1},  // middle 5000
    {{9, 3, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF16}, 293, 7},     // prefill chunk over a fitted middle
    {{8, 2, 128, 4, 32, 600, 100, 64, 0.2, KvType::kF32}, 40, 33},
    {{8, 2, 128, 4, 32, 600, 100, 64, 0.2, KvType::kF16},
     325,
     33},  // prefill chunk, fitted middle 289   // prefill chunk, middle before the fit
    {{4, 2, 64, 4, 32, 0, 0, 0, 0.0, KvType::kF16}, 100, 5},    // window policy
    {{4, 4, 64, 0, 48, 300, 32, 32, 0.2, KvType::kF32}, 0, 9},  // first chunk: nothing cached
    // split_attention.comp's tiles (128 rows, spectral rows in blocks of 4 per invocation, g in shared
    // memory whole or in blocks) at row counts that are not multiples of them, and its fallback:
    {{32, 8, 128, 4, 64, 2000, 512, 256, 0.24, KvType::kF16}, 1500, 1},  // 8B shape, middle 1432
    {{16, 2, 64, 4, 40, 900, 200, 64, 0.3, KvType::kF32}, 700, 1},       // G 8: g in blocks of 128
    {{12, 2, 64, 4, 40, 900, 48, 64, 0.5, KvType::kF16}, 600, 3},        // G 6, prefill chunk
    {{8, 2, 128, 4, 64, 600, 64, 64, 1.0, KvType::kF16}, 400, 1},        // fitted, all kept
    {{16, 1, 64, 4, 32, 400, 64, 64, 0.2, KvType::kF32}, 293, 1},        // G 16: split_attention_rows
    {{4, 2, 36, 4, 32, 400, 32, 64, 0.2, KvType::kF16}, 200, 2},         // d 36: split_attention_rows
};

INSTANTIATE_TEST_SUITE_P(Shapes, SplitAttentionTest, ::testing::ValuesIn(kAttnCases), [](const auto& info) {
  const AttnCase& a = info.param;
  const CacheCase& c = a.c;
  return name_of({{"h", c.n_heads},
                  {"kv", c.n_kv_heads},
                  {"d", c.head_dim},
                  {"W", c.window},
                  {"T", c.middle},
                  {"N", c.n_freq},
                  {"keep", int(c.keep * 100)},
                  {"fill", a.fill},
                  {"n", a.n}}) +
         (c.type == KvType::kF16 ? "f16" : "f32");
});

// {heads, kv heads, d, S, W, T, N, fit, keep, type}, fill, n; every middle fitted.
const AttnCase kMiddlePassCases[] = {
    {{4, 1, 64, 4, 16, 300, 16, 1, 0.2, KvType::kF32}, 21, 1},        // middle 1, G 4, one head block of 4
    {{16, 2, 128, 4, 32, 600, 128, 256, 0.2, KvType::kF16}, 293, 1},  // middle 257, G 8, d 128
    {{4, 4, 64, 4, 64, 5100, 16, 256, 0.0, KvType::kF32}, 5068, 1},   // middle 5000, G 1, all compressed
    {{8, 2, 128, 4, 64, 5100, 16, 256, 0.2, KvType::kF16}, 5068, 1},  // middle 5000, f16, d 128
    {{8, 1, 64, 4, 16, 1100, 1024, 256, 0.2, KvType::kF32}, 620, 1},  // N 1024 (16 frequency blocks), G 8
    {{8, 2, 64, 4, 32, 800, 512, 256, 0.2, KvType::kF32}, 600, 2},    // N 512, two queries
    {{8, 2, 128, 4, 32, 600, 64, 64, 1.0, KvType::kF16}, 400, 1},     // all kept: no compressed dims
    {{8, 8, 128, 4, 32, 600, 64, 64, 1.0, KvType::kF32}, 400, 3},     // all kept, G 1, three queries
    {{64, 16, 64, 4, 16, 400, 32, 64, 0.2, KvType::kF16}, 300, 1},    // 64 heads: two head blocks
    {{12, 2, 64, 4, 40, 900, 48, 64, 0.5, KvType::kF16}, 600, 8},     // G 6, 8 queries: 96 query heads
    {{32, 8, 128, 4, 64, 2000, 512, 256, 0.24, KvType::kF16}, 1500, 1},  // 8B shape, middle 1432
    // 8B shape with the real window: split_attention.comp's chunks of 16-row multiples (144 rows on a CPU
    // device: a full tile and a partial one), the merge over compressed-dim blocks of every KV group
    {{32, 8, 128, 4, 1020, 2000, 128, 256, 0.24, KvType::kF16}, 1700, 1},
};

INSTANTIATE_TEST_SUITE_P(Shapes, SplitMiddlePassTest, ::testing::ValuesIn(kMiddlePassCases),
                         [](const auto& info) {
                           const AttnCase& a = info.param;
                           const CacheCase& c = a.c;
                           return name_of({{"h", c.n_heads},
                                           {"kv", c.n_kv_heads},
                                           {"d", c.head_dim},
                                           {"M", a.c.window > 0 ? a.fill - c.sink - c.window : 0},
                                           {"N", c.n_freq},
                                           {"keep", int(c.keep * 100)},
                                           {"n", a.n}}) +
                                  (c.type == KvType::kF16 ? "f16" : "f32");
                         });

// The FFT form of the middle pass (split_middle_fft.comp: T a multiple of a power-of-two N) against the CPU
// reference and against the two direct passes it replaces (FKV_VULKAN_MIDDLE_FFT=0); the GPU profile proves
// which ran.
class SplitMiddleFftTest : public SplitAttentionTest {};

TEST_P(SplitMiddleFftTest, MatchesCpuAndTheDirectPasses) {
  const AttnCase a = GetParam();
  ASSERT_EQ(a.c.middle % a.c.n_freq, 0) << "the FFT pass needs T to be a multiple of N";
  State st = build(a);
  ASSERT_TRUE(st.tc->L.fitted(a.fill)) << "the case must have a fitted middle";
  expect_switch_agrees(a, st, "FKV_VULKAN_MIDDLE_FFT", "FFT pass", "direct passes",
                       [&](bool fft, std::map<std::string, uint64_t>& calls) {
                         EXPECT_EQ(calls["split_middle_fft"], fft ? 1u : 0u);
                         // The direct passes take up to 8 queries; split_attention.comp more.
                         EXPECT_EQ(calls["split_middle_values"], fft || a.n > 8 ? 0u : 1u);
                         EXPECT_EQ(calls["split_attention_merge"], 1u);
                       });
}

TEST_P(SplitMiddleFftTest, PrepBesideTheWindowPassInOneDispatchAgrees) {
  const AttnCase a = GetParam();
  State st = build(a);
  // split_prep_window.comp for a decode step (one query) with compressed K dims; two dispatches otherwise.
  const bool fusable = a.n == 1 && st.tc->L.k.dims.n_comp() > 0;
  expect_switch_agrees(a, st, "FKV_VULKAN_PREP_WINDOW", "one dispatch", "two dispatches",
                       [&](bool on, std::map<std::string, uint64_t>& calls) {
                         EXPECT_EQ(calls["split_prep_window"], on && fusable ? 1u : 0u);
                         EXPECT_EQ(calls["split_window_decode"], on && fusable ? 0u : a.n == 1 ? 1u : 0u);
                       });
}

// The merge's dims per workgroup do not change its results beyond rounding (sum pass and inline sum alike:
// N up to 1024 here, N <= 128 with the inline sum in SplitInlineSumTest).
TEST_P(SplitMiddleFftTest, MergeLanesAgree) {
  const AttnCase a = GetParam();
  State st = build(a);
  expect_merge_lanes_agree(a, st);
}

// {heads, kv heads, d, S, W, T, N, fit, keep, type}, fill, n; T a multiple of N, every middle fitted.
const AttnCase kMiddleFftCases[] = {
    {{4, 1, 64, 4, 16, 64, 2, 1, 0.2, KvType::kF32}, 21, 1},  // middle 1, N 2
    // One KV head, 13 kept dims: the last row's 16-byte K blocks reach into the unwritten (NaN-poisoned)
    // rows, which must not count (lavapipe may fold NaN times zero to zero; a GPU keeping NaN fails here).
    {{4, 1, 64, 4, 16, 256, 64, 64, 0.2, KvType::kF32}, 221, 1},
    {{4, 1, 64, 4, 16, 256, 64, 64, 0.2, KvType::kF16}, 221, 1},
    {{9, 3, 64, 4, 32, 512, 64, 64, 0.2, KvType::kF32}, 293, 1},         // G 3, middle 257, half the columns
    {{16, 2, 128, 4, 32, 640, 128, 256, 0.2, KvType::kF16}, 293, 1},     // G 8, d 128
    {{4, 4, 64, 4, 64, 5120, 16, 256, 0.0, KvType::kF32}, 5068, 1},      // middle 5000, all compressed
    {{8, 2, 128, 4, 64, 5120, 256, 256, 0.2, KvType::kF16}, 5100, 1},    // middle 5032, odd kept counts
    {{8, 4, 64, 4, 16, 2048, 1024, 256, 0.2, KvType::kF32}, 620, 1},     // N 1024, G 2
    {{8, 2, 64, 4, 32, 1024, 512, 256, 0.2, KvType::kF32}, 600, 2},      // N 512, two queries
    {{8, 2, 128, 4, 32, 640, 64, 64, 0.9, KvType::kF16}, 400, 1},        // 115 of 128 dims kept
    {{8, 2, 64, 4, 32, 1024, 64, 64, 0.5, KvType::kF16}, 900, 8},        // 8 queries
    {{8, 2, 64, 4, 32, 1024, 64, 64, 0.5, KvType::kF16}, 900, 16},       // a prefill chunk of 16 queries
    {{16, 4, 64, 4, 32, 2048, 128, 128, 0.3, KvType::kF32}, 1200, 33},   // 33 queries, G 4
    {{32, 8, 128, 4, 64, 2048, 512, 256, 0.24, KvType::kF16}, 1500, 1},  // 8B shape
    {{32, 8, 128, 4, 1020, 3072, 128, 256, 0.24, KvType::kF16}, 3500, 1},  // 8B shape, real window
};

INSTANTIATE_TEST_SUITE_P(Shapes, SplitMiddleFftTest, ::testing::ValuesIn(kMiddleFftCases),
                         [](const auto& info) {
                           const AttnCase& a = info.param;
                           const CacheCase& c = a.c;
                           return name_of({{"h", c.n_heads},
                                           {"kv", c.n_kv_heads},
                                           {"d", c.head_dim},
                                           {"T", c.middle},
                                           {"M", a.fill - c.sink - c.window},
                                           {"N", c.n_freq},
                                           {"keep", int(c.keep * 100)},
                                           {"n", a.n}}) +
                                  (c.type == KvType::kF16 ? "f16" : "f32");
                         });

// The merge summing the partials itself (INLINE_SUM: a decode step, few chunks, N <= 128) against the CPU
// reference and against split_merge_sum.comp + split_attention_merge.comp (FKV_VULKAN_INLINE_SUM=0); the GPU
// profile proves which ran. Decode cases of the window pass (no h) and of the FFT pass (h of N <= 128).
class SplitInlineSumTest : public SplitAttentionTest {};

TEST_P(SplitInlineSumTest, MatchesCpuAndTheSumPass) {
  const AttnCase a = GetParam();
  State st = build(a);
  expect_switch_agrees(a, st, "FKV_VULKAN_INLINE_SUM", "inline sum", "sum pass",
                       [](bool inline_sum, std::map<std::string, uint64_t>& calls) {
                         EXPECT_EQ(calls["split_merge_sum"], inline_sum ? 0u : 1u);
                         EXPECT_EQ(calls["split_attention_merge"], 1u);
                       });
}

TEST_P(SplitInlineSumTest, MergeLanesAgree) {
  const AttnCase a = GetParam();
  State st = build(a);
  expect_merge_lanes_agree(a, st);
}

std::vector<AttnCase> inline_sum_cases() {
  std::vector<AttnCase> cases(std::begin(kWindowDecodeCases), std::end(kWindowDecodeCases));
  for (const AttnCase& a : kMiddleFftCases)
    if (a.n == 1 && a.c.n_freq <= 128) cases.push_back(a);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, SplitInlineSumTest, ::testing::ValuesIn(inline_sum_cases()),
                         [](const auto& info) {
                           const AttnCase& a = info.param;
                           const CacheCase& c = a.c;
                           return name_of({{"h", c.n_heads},
                                           {"kv", c.n_kv_heads},
                                           {"d", c.head_dim},
                                           {"W", c.window},
                                           {"fill", a.fill},
                                           {"N", c.n_freq},
                                           {"keep", int(c.keep * 100)}}) +
                                  (c.type == KvType::kF16 ? "f16" : "f32");
                         });

}  // namespace
}  // namespace fkv::test

namespace fkv::test {
namespace {

// Decode attention of one layer at Llama-3-8B's shape (32 query heads, 8 KV heads, head_dim 128), full
// cache against the fourier cache (S 4, W 1020, 24% of dims kept, N 512 and 128, fitted middle), off by
// default: tools/gpu-check-vulkan.sh runs it on the GPU. FKV_BENCH_LENS picks the lengths.
TEST_F(SplitKvTest, DISABLED_BenchSplitAttentionDecode) {
  const AttentionShape s{32, 8, 128, 0.088f};
  std::vector<int> lens = {8192, 32768, 131072};
  if (const char* e = std::getenv("FKV_BENCH_LENS")) {
    lens.clear();
    for (std::string t; *e; ++e) {
      if (*e != ',') t += *e;
      if (*e == ',' || e[1] == 0) lens.push_back(std::stoi(t)), t.clear();
    }
  }
  auto time_ms = [&](int reps, const std::function<void()>& f) {
    f();
    vk->synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    vk->synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  BufferPtr q = vk->alloc(32 * 128 * 4, "q"), o = vk->alloc(32 * 128 * 4, "o");
  BufferPtr ck = vk->alloc(8 * 128 * 4, "k"), cv = vk->alloc(8 * 128 * 4, "v");
  for (const BufferPtr& b : {q, ck, cv}) {
    const std::vector<float> x = random_floats(b->size() / 4, 5);
    vk->upload(*b, 0, x.data(), b->size());
  }
  for (int len : lens) {
    {
      const size_t kv = size_t(len) * 8 * 128 * 2;
      BufferPtr k = vk->alloc(kv, "k"), v = vk->alloc(kv, "v");
      std::vector<uint16_t> zero(kv / 2, 0);
      vk->upload(*k, 0, zero.data(), kv);
      vk->upload(*v, 0, zero.data(), kv);
      const double ms = time_ms(10, [&] {
        vk->attention(*q, 1, len - 1, s, KvLayer{k.get(), v.get(), KvType::kF16, len}, *o);
      });
      std::printf("BENCH split-kv full   len=%6d           %8.3f ms  %7.1f GB/s\n", len, ms,
                  2.0 * double(kv) / ms / 1e6);
    }
    for (int N : {512, 128}) {
      const CacheCase c{32, 8, 128, 4, 1020, len - 1024, N, 256, 0.24, KvType::kF16};
      TestCache t(*vk, c, false);
      for (const SplitKvPart* P : {&t.L.k, &t.L.v}) {
        std::vector<uint16_t> kept(P->kept->size() / 2, float_to_half(0.5f));
        vk->upload(*P->kept, 0, kept.data(), P->kept->size());
        const std::vector<float> coef = random_floats(P->coef->size() / 4, 9);
        vk->upload(*P->coef, 0, coef.data(), P->coef->size());
        std::vector<float> norm(P->norm->size() / 4, 1.0f);
        vk->upload(*P->norm, 0, norm.data(), P->norm->size());
        for (DeviceBuffer* b : {P->sink, P->window}) {
          std::vector<uint8_t> zero(b->size(), 0);
          vk->upload(*b, 0, zero.data(), b->size());
        }
      }
      size_t bytes = 0;
      for (const SplitKvPart* P : {&t.L.k, &t.L.v})
        bytes += P->kept->size() + P->coef->size() + P->window->size();
      // The decode middle pass (default), then the middle inside split_attention.comp.
      for (const char* mp : {"1", "0"}) {
        setenv("FKV_VULKAN_MIDDLE_PASS", mp, 1);
        const double ms = time_ms(10, [&] {
          vk->split_attention(*q, *ck, *cv, 1, len - 1, s, t.L, SplitAttentionPath::kAuto, *o);
        });
        std::printf("BENCH split-kv fourier len=%6d N=%4d middle pass %s %8.3f ms  %7.1f GB/s of cache\n", len,
                    N, mp[0] == '1' ? "on " : "off", ms, double(bytes) / ms / 1e6);
      }
      unsetenv("FKV_VULKAN_MIDDLE_PASS");
    }
  }
}

}  // namespace
}  // namespace fkv::test
