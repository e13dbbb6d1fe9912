// fkv-calibrate: a Fourier profile for a model from a calibration text (../shared/FOURIER.md "Choosing the
// compressed dims"). Runs the text through the model with an exact cache, takes every layer's cached K (after
// RoPE) and V, and for each layer, KV head, K/V and dim compresses the middle (positions S .. L-W, T = its
// length, N frequencies), reconstructs it with the normalisation the cache will use (--fourier-norm:
// FOURIER.md's range match, or fkv's least-squares fit) and measures the mean squared error. Per layer all
// heads are ranked together; the lowest-error fraction is compressed (the reference's per-layer fractions
// scaled to the model's depth, or --fourier-ratio everywhere).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_options.h"
#include "common/model_loader.h"
#include "engine/session.h"
#include "fourier/fourier_profile.h"
#include "fourier/fourier_transform.h"
#include "gguf/gguf_writer.h"
#include "model/llama_hparams.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace fkv::tools {
namespace {

struct Options {
  CommonOptions common;
  std::string text, out;
  std::string gguf_out;  // also write a copy of the model with the profile in its metadata
};

// Per-dim reconstruction MSE of `rows` values of n_dims dims ([rows, n_dims]) compressed to N frequencies
// with period T = rows. x̂ = a·x̃ + b with FOURIER.md's range match (a = ρ/ρ̃) or, with least_squares, the
// affine fit that minimises this very error (a = cov(x, x̃)/var(x̃), b = μ − a·μ̃).
std::vector<double> dim_errors(const std::vector<float>& x, int rows, int n_dims, int n_freq,
                               bool least_squares) {
  FourierBasis basis(rows, n_freq);
  std::vector<float> coef(size_t(n_dims) * 2 * n_freq), norm(size_t(n_dims) * 4), rec(size_t(rows) * n_dims);
  fourier_fit(basis, x.data(), rows, n_dims, n_dims, coef.data(), norm.data());
  fourier_reconstruct(basis, coef.data(), n_dims, 0, rows, rec.data());
  std::vector<double> mse(size_t(n_dims), 0.0);
  for (int j = 0; j < n_dims; ++j) {
    const RangeNorm rn{norm[size_t(j) * 4], norm[size_t(j) * 4 + 1], norm[size_t(j) * 4 + 2],
                       norm[size_t(j) * 4 + 3]};
    double a = rn.a(), b = rn.b();
    if (least_squares) {
      double sx = 0, sr = 0, srr = 0, sxr = 0;
      for (int p = 0; p < rows; ++p) {
        const double xv = x[size_t(p) * n_dims + j], rv = rec[size_t(p) * n_dims + j];
        sx += xv, sr += rv, srr += rv * rv, sxr += xv * rv;
      }
      const double mx = sx / rows, mr = sr / rows, var = srr / rows - mr * mr;
      a = var > 0 ? (sxr / rows - mx * mr) / var : 0.0;
      b = mx - a * mr;
    }
    for (int p = 0; p < rows; ++p) {
      const double e = a * rec[size_t(p) * n_dims + j] + b - x[size_t(p) * n_dims + j];
      mse[size_t(j)] += e * e;
    }
    mse[size_t(j)] /= rows;
  }
  return mse;
}

int run(int argc, char** argv) {
  Options o;
  o.common.ctx = 4096;
  CLI::App app{"fkv-calibrate: per-dim Fourier reconstruction errors and a compressed-dim profile"};
  add_common_options(app, o.common, true);
  app.add_option("--text", o.text, "calibration text file")->required();
  app.add_option("--out", o.out, "profile JSON to write")->required();
  app.add_option(
      "--gguf-out", o.gguf_out,
      "also write a copy of the model with the profile stored in its metadata (fkv.fourier.profile), "
      "used by --kv fourier when no --fourier-profile is given");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitBadInput;
  }
  // Checked before the (long) run: the copy is streamed from the mapped model, so it cannot replace it.
  require(o.gguf_out.empty() || !std::filesystem::exists(o.gguf_out) ||
              !std::filesystem::equivalent(o.gguf_out, resolve_model_path(o.common)),
          ErrorCode::kInvalidArgument, "--gguf-out must not be the model file itself");
  LoadedModel m = load_model(o.common, true);
  const LlamaHparams& hp = m.model->hparams();
  const std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(*m.file);
  std::ifstream in(o.text);
  require(bool(in), ErrorCode::kIo, "cannot open " + o.text);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  text.resize(std::min(text.size(), size_t(o.common.ctx) * 16));  // enough bytes for ctx tokens
  std::vector<int32_t> ids = tok->encode(text, tok->add_bos_by_default(), false);
  const int L = std::min<int>(int(ids.size()), o.common.ctx > 0 ? o.common.ctx : 4096);
  ids.resize(size_t(L));
  const int S = o.common.sink, W = o.common.window, N = o.common.fourier_n, M = L - S - W;
  require(M > 2 * N, ErrorCode::kInvalidArgument,
          "calibration middle of " + std::to_string(M) + " tokens (L - S - W) is too short for N = " +
              std::to_string(N) + "; give a longer --ctx or text, or a smaller --window / --fourier-n");

  // The cached K (after RoPE) and V of every layer over the middle, [M, kv_dim] each.
  const int kvd = hp.kv_dim();
  std::vector<std::vector<float>> ks(size_t(hp.n_layers), std::vector<float>(size_t(M) * kvd));
  std::vector<std::vector<float>> vs = ks;
  SessionOptions so;
  so.ctx = L;
  so.kv.policy = "full";
  Session session(*m.model, so);
  session.on_kv = [&](int layer, const float* k, const float* v, int n, int pos0) {
    for (int i = 0; i < n; ++i) {
      const int m_pos = pos0 + i - S;
      if (m_pos < 0 || m_pos >= M) continue;
      std::copy(k + size_t(i) * kvd, k + size_t(i + 1) * kvd,
                ks[size_t(layer)].begin() + size_t(m_pos) * kvd);
      std::copy(v + size_t(i) * kvd, v + size_t(i + 1) * kvd,
                vs[size_t(layer)].begin() + size_t(m_pos) * kvd);
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  session.eval(ids);
  std::fprintf(stderr, "fkv-calibrate: %d tokens through the model in %.1f s; measuring %d layers\n", L,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), hp.n_layers);

  FourierProfile p;
  p.n_layers = hp.n_layers;
  p.n_kv_heads = hp.n_kv_heads;
  p.head_dim = hp.head_dim;
  p.source = "fkv-calibrate " + o.text + " (" + std::to_string(L) + " tokens, S=" + std::to_string(S) +
             ", W=" + std::to_string(W) + ", N=" + std::to_string(N) + ", norm " + o.common.fourier_norm +
             ")";
  p.layers.resize(size_t(hp.n_layers));
  ThreadPool pool(o.common.threads);
  pool.parallel_for(hp.n_layers, 1, [&](int64_t b, int64_t e) {
    for (int64_t l = b; l < e; ++l) {
      auto per_head = [&](const std::vector<double>& mse) {
        std::vector<std::vector<double>> out(size_t(hp.n_kv_heads));
        for (int g = 0; g < hp.n_kv_heads; ++g)
          out[size_t(g)].assign(mse.begin() + size_t(g) * hp.head_dim,
                                mse.begin() + size_t(g + 1) * hp.head_dim);
        return out;
      };
      p.layers[size_t(l)].k_mse =
          per_head(dim_errors(ks[size_t(l)], M, kvd, N, o.common.fourier_norm == "lsq"));
      p.layers[size_t(l)].v_mse =
          per_head(dim_errors(vs[size_t(l)], M, kvd, N, o.common.fourier_norm == "lsq"));
    }
  });
  select_compressed_dims(p, o.common.fourier_ratio);
  save_fourier_profile(p, o.out);
  if (!o.gguf_out.empty()) {
    std::fprintf(stderr, "fkv-calibrate: writing %s ...\n", o.gguf_out.c_str());
    write_gguf_copy_with_string(*m.file, o.gguf_out, kFourierProfileKey, fourier_profile_json(p));
  }

  // Where the kept K dims lie: the paper finds them mostly in the low-frequency (upper) half of each head.
  int kept_k = 0, kept_k_upper = 0;
  for (const auto& layer : p.layers)
    for (const auto& comp : layer.k) {
      std::vector<bool> c(size_t(hp.head_dim), false);
      for (int j : comp) c[size_t(j)] = true;
      for (int j = 0; j < hp.head_dim; ++j)
        if (!c[size_t(j)]) {
          ++kept_k;
          kept_k_upper += j >= hp.head_dim / 2;
        }
    }
  nlohmann::json summary = {
      {"profile", o.out},
      {"tokens", L},
      {"compressed_fraction", p.compressed_fraction()},
      {"kept_k_dims_in_low_frequency_half", kept_k ? double(kept_k_upper) / kept_k : 0.0}};
  if (o.common.json)
    std::printf("%s\n", summary.dump().c_str());
  else
    std::printf("wrote %s: %.1f%% of KV dims compressed; %.0f%% of kept K dims in the low-frequency half\n",
                o.out.c_str(), 100 * p.compressed_fraction(),
                100 * summary["kept_k_dims_in_low_frequency_half"].get<double>());
  return kExitOk;
}

}  // namespace
}  // namespace fkv::tools

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-calibrate", fkv::tools::run, argc, argv);
}
