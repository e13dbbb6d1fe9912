// Decode consistency on the default model (FOURIER.md "What to test", issue 4): a prompt whose middle is
// fitted during prefill, then 64 generated tokens that move into the middle one by one. At the end the
// cache's coefficients must equal a projection of every middle token from scratch at its true position, and a
// session whose coefficients are replaced by that from-scratch projection must give the same next-token
// logits. Smaller than the 1.5K prompt / W=256 so that CI stays fast on two cores; same structure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/session.h"
#include "fourier/fourier_transform.h"
#include "gguf/gguf_reader.h"
#include "kv/split_kv_cache.h"
#include "model/llama_model.h"
#include "test_paths.h"
#include "util/half.h"

namespace fkv {
namespace {

constexpr int kPrompt = 320, kGen = 64, kSink = 4, kWindow = 64;

struct DecodeRun {
  std::unique_ptr<Session> session;
  std::vector<std::vector<float>> k, v;  // per layer: [positions, kv_dim] as stored
  std::vector<float> logits;
};

void run(const LlamaModel& model, DecodeRun& r) {
  const LlamaHparams& hp = model.hparams();
  SessionOptions so;
  so.ctx = kPrompt + kGen + 1;
  so.kv.policy = "fourier";
  so.kv.sink = kSink;
  so.kv.window = kWindow;
  so.kv.fourier_n = 48;
  so.kv.fourier_ratio = 0.5;
  so.kv.fourier_fit_tokens = 128;
  r.session = std::make_unique<Session>(model, so);
  r.k.assign(size_t(hp.n_layers), {});
  r.v.assign(size_t(hp.n_layers), {});
  r.session->on_kv = [&](int layer, const float* k, const float* v, int n, int) {
    r.k[size_t(layer)].insert(r.k[size_t(layer)].end(), k, k + size_t(n) * hp.kv_dim());
    r.v[size_t(layer)].insert(r.v[size_t(layer)].end(), v, v + size_t(n) * hp.kv_dim());
  };
  std::vector<int32_t> prompt(kPrompt);
  for (int i = 0; i < kPrompt; ++i) prompt[size_t(i)] = 1 + (i * 7919) % (hp.vocab - 1);  // fixed pseudo-text
  std::vector<float> logits = r.session->eval(prompt);
  for (int i = 0; i < kGen; ++i) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = r.session->eval(std::span<const int32_t>(&next, 1));
  }
  r.logits = logits;
}

TEST(FourierDecode, AccumulatedCacheEqualsProjectionFromScratch) {
  auto file = GgufFile::open(test::default_model_path());
  auto backend = create_cpu_backend(0);
  auto model = LlamaModel::load(*file, *backend);
  const LlamaHparams& hp = model->hparams();
  DecodeRun a, b;
  run(*model, a);
  run(*model, b);
  const int t = kPrompt + kGen;
  auto& cache_b = const_cast<SplitKvCache&>(dynamic_cast<const SplitKvCache&>(b.session->kv_cache()));
  const int kvd = hp.kv_dim();
  double worst = 0;
  for (int l = 0; l < hp.n_layers; ++l) {
    const SplitKvLayer& L = cache_b.layer(l);
    const int M = L.middle_len(t);
    ASSERT_GT(M, L.fit_tokens) << "the middle must grow after the fit";
    ASSERT_EQ(M, t - kSink - kWindow);
    for (int part = 0; part < 2; ++part) {
      const SplitKvPart& P = part == 0 ? L.k : L.v;
      const std::vector<float>& src = part == 0 ? b.k[size_t(l)] : b.v[size_t(l)];
      const int nc = P.dims.n_comp();
      std::vector<float> vals(size_t(M) * nc);
      for (int m = 0; m < M; ++m)
        for (int g = 0; g < hp.n_kv_heads; ++g)
          for (int i = P.dims.comp_offset[g]; i < P.dims.comp_offset[g + 1]; ++i)
            vals[size_t(m) * nc + i] =
                half_to_float(float_to_half(src[size_t(kSink + m) * kvd + g * hp.head_dim + P.dims.comp[i]]));
      std::vector<float> scratch(size_t(nc) * 2 * L.n_freq);
      fourier_project(FourierBasis(L.middle, L.n_freq), vals.data(), M, nc, nc, 0, scratch.data());
      float* coef = cpu_buffer_floats(*P.coef);
      double num = 0, den = 0;
      for (size_t i = 0; i < scratch.size(); ++i) {
        num = std::max(num, double(std::fabs(coef[i] - scratch[i])));
        den = std::max(den, double(std::fabs(scratch[i])));
      }
      worst = std::max(worst, num / den);
      std::copy(scratch.begin(), scratch.end(), coef);  // session b continues from the from-scratch cache
    }
  }
  EXPECT_LT(worst, 1e-5);
  // One more token through both sessions: accumulated vs from-scratch coefficients.
  const int32_t next = int32_t(std::max_element(a.logits.begin(), a.logits.end()) - a.logits.begin());
  const std::vector<float> la = a.session->eval(std::span<const int32_t>(&next, 1));
  const std::vector<float> lb = b.session->eval(std::span<const int32_t>(&next, 1));
  double num = 0, den = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    num += (la[i] - lb[i]) * double(la[i] - lb[i]);
    den += double(lb[i]) * lb[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-5);
  EXPECT_EQ(std::max_element(la.begin(), la.end()) - la.begin(),
            std::max_element(lb.begin(), lb.end()) - lb.begin());
}

}  // namespace
}  // namespace fkv
