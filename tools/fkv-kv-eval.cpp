// fkv-kv-eval: KV-policy quality on a real model, for docs/ACCURACY.md until fkv-eval covers it.
//   perplexity: WikiText-style text, the first L tokens of the file, evaluated in the session's prefill
//               chunks (later chunks see the compressed cache), NLL over every predicted token and over the
//               tokens past the command line's S + W (where policies differ);
//   passkey:    a pass key sentence hidden at a depth of an essay haystack of L tokens, greedy answer.
// --match-window: run the window policy with the W that gives it the fourier policy's KV bytes at L.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_options.h"
#include "common/model_loader.h"
#include "engine/session.h"
#include "kv/kv_options.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace fkv::tools {
namespace {

struct Options {
  CommonOptions common;
  std::string task = "perplexity";
  std::string text;
  std::vector<int> lengths{2048};
  std::vector<double> depths{0.1, 0.3, 0.5, 0.7, 0.9};
  int fit_tokens = 256;
  std::string path = "auto";
  bool match_window = false;
};

std::string read_text(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  require(bool(in), ErrorCode::kIo, "cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (!s.empty() && s[0] == '{') s = nlohmann::json::parse(s).at("text").get<std::string>();
  if (s.size() > max_bytes) s.resize(max_bytes);
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

KvOptions kv_for(const Options& o, const LlamaModel& model, int length) {
  KvOptions kv = kv_options(o.common);
  kv.fourier_fit_tokens = o.fit_tokens;
  kv.fourier_path = o.path;
  if (o.match_window && kv.policy == "window") {
    // The fourier cache's bytes at this length, spent on a longer window instead.
    KvOptions f = kv;
    f.policy = "fourier";
    const size_t fourier_bytes =
        make_kv_cache(model.backend(), model.hparams(), f, length)->memory(length).used();
    const LlamaHparams& hp = model.hparams();
    const size_t per_token = 2 * size_t(hp.n_layers) * hp.kv_dim() * kv_type_bytes(kv.type);
    kv.window = std::max(1, int(fourier_bytes / per_token) - kv.sink);
  }
  return kv;
}

void report(const Options& o, const KvOptions& kv, const Session& s, int length,
            const nlohmann::json& extra) {
  const KvMemoryReport m = s.kv_memory();
  nlohmann::json j = extra;
  j["policy"] = kv.policy;
  j["length"] = length;
  j["sink"] = kv.sink;
  j["window"] = kv.window;
  if (kv.policy == "fourier") {
    j["fourier_n"] = kv.fourier_n;
    j["fourier_ratio"] = kv.fourier_ratio;
    j["profile"] = !kv.fourier_profile.empty()                        ? kv.fourier_profile
                   : s.model().hparams().fourier_profile_json.empty() ? "heuristic"
                                                                      : "model metadata";
    j["fit_tokens"] = kv.fourier_fit_tokens;
    j["norm"] = kv.fourier_norm;
  }
  j["kv_bytes"] = m.used();
  j["kv_parts"] = {{"sink", m.sink},
                   {"middle_kept", m.middle_kept},
                   {"coefficients", m.coefficients},
                   {"window", m.window},
                   {"pending", m.middle_pending}};
  (void)o;
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

int perplexity(const Options& o, LoadedModel& m, const Tokenizer& tok) {
  const std::string text = read_text(o.text, 400000);
  const std::vector<int32_t> all = tok.encode(text, tok.add_bos_by_default(), false);
  for (int length : o.lengths) {
    require(int(all.size()) >= length, ErrorCode::kInvalidArgument,
            "text too short for " + std::to_string(length));
    const KvOptions kv = kv_for(o, *m.model, length);
    SessionOptions so;
    so.ctx = length;
    so.kv = kv;
    Session s(*m.model, so);
    // The tail starts after the nominal S + W of the command line, also for a --match-window run whose own W
    // is longer, so that every policy's "past window" number covers the same tokens.
    const int vocab = m.model->hparams().vocab, chunk = 256, tail_from = o.common.sink + o.common.window;
    double nll = 0, nll_tail = 0;
    int count = 0, count_tail = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int start = 0; start < length; start += chunk) {
      const int n = std::min(chunk, length - start);
      const std::vector<float>& logits =
          s.eval(std::span<const int32_t>(all.data() + start, size_t(n)), /*all_logits=*/true);
      for (int i = 0; i < n && start + i + 1 < length; ++i) {
        const float* l = logits.data() + size_t(i) * vocab;
        float mx = l[0];
        for (int v = 1; v < vocab; ++v) mx = std::max(mx, l[v]);
        double z = 0;
        for (int v = 0; v < vocab; ++v) z += std::exp(double(l[v] - mx));
        const double loss = -(double(l[all[size_t(start + i + 1)]] - mx) - std::log(z));
        nll += loss;
        ++count;
        if (start + i + 1 >= tail_from) {
          nll_tail += loss;
          ++count_tail;
        }
      }
    }
    report(o, kv, s, length,
           {{"task", "perplexity"},
            {"ppl", std::exp(nll / count)},
            {"ppl_past_window", count_tail ? std::exp(nll_tail / count_tail) : 0.0},
            {"tokens", count},
            {"seconds", seconds_since(t0)}});
  }
  return kExitOk;
}

int passkey(const Options& o, LoadedModel& m, const Tokenizer& tok) {
  const std::string hay_text = read_text(o.text, 200000);
  const std::vector<int32_t> hay = tok.encode(hay_text, false, false);
  std::mt19937 rng(1234);
  for (int length : o.lengths) {
    for (double depth : o.depths) {
      const int key = 10000 + int(rng() % 90000);
      const std::string ks = std::to_string(key);
      const std::vector<int32_t> needle =
          tok.encode(" The pass key is " + ks + ". Remember it. " + ks + " is the pass key. ", false, false);
      const std::vector<int32_t> question =
          tok.encode("\n\nWhat is the pass key? The pass key is", false, false);
      const int n_gen = 8;
      std::vector<int32_t> prompt;
      if (tok.add_bos_by_default() && tok.bos_id() >= 0) prompt.push_back(tok.bos_id());
      const int budget = length - n_gen - int(needle.size() + question.size() + prompt.size());
      require(budget > 0 && size_t(budget) <= hay.size(), ErrorCode::kInvalidArgument, "haystack too short");
      const int at = int(depth * budget);
      prompt.insert(prompt.end(), hay.begin(), hay.begin() + at);
      prompt.insert(prompt.end(), needle.begin(), needle.end());
      prompt.insert(prompt.end(), hay.begin() + at, hay.begin() + budget);
      prompt.insert(prompt.end(), question.begin(), question.end());
      const KvOptions kv = kv_for(o, *m.model, length);
      SessionOptions so;
      so.ctx = length;
      so.kv = kv;
      Session s(*m.model, so);
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<float> logits = s.eval(prompt);
      std::vector<int32_t> out;
      for (int i = 0; i < n_gen; ++i) {
        int32_t best = 0;
        for (int v = 1; v < int(logits.size()); ++v)
          if (logits[size_t(v)] > logits[size_t(best)]) best = v;
        out.push_back(best);
        if (i + 1 < n_gen) logits = s.eval(std::span<const int32_t>(&out.back(), 1));
      }
      const std::string answer = tok.decode(out);
      report(o, kv, s, length,
             {{"task", "passkey"},
              {"depth", depth},
              {"key", ks},
              {"answer", answer},
              {"correct", answer.find(ks) != std::string::npos},
              {"seconds", seconds_since(t0)}});
    }
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"fkv-kv-eval: KV policy quality (perplexity, passkey)"};
  add_common_options(app, o.common, false);
  app.add_option("task", o.task, "perplexity | passkey")->check(CLI::IsMember({"perplexity", "passkey"}));
  app.add_option("--text", o.text, "text file (WikiText) or {\"text\": ...} JSON (essays)")->required();
  app.add_option("--lengths", o.lengths, "context lengths")->delimiter(',');
  app.add_option("--depths", o.depths, "needle depths (passkey)")->delimiter(',');
  app.add_option("--fourier-fit", o.fit_tokens, "middle length at which the Fourier fit happens");
  app.add_option("--fourier-path", o.path, "reference | fused | spectral | auto");
  app.add_flag("--match-window", o.match_window, "window policy: W that matches the fourier cache's bytes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitBadInput;
  }
  LoadedModel m = load_model(o.common, true);
  const std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(*m.file);
  return o.task == "perplexity" ? perplexity(o, m, *tok) : passkey(o, m, *tok);
}

}  // namespace
}  // namespace fkv::tools

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-kv-eval", fkv::tools::run, argc, argv);
}
