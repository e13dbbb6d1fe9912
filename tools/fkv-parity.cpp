// fkv-parity: runs one model and prompt on several backends and compares them layer by layer (the
// residual stream after the embedding and after every block) and at the final logits, against the first
// backend named. Exit 0 when every comparison is within tolerance, 1 when one is not, 2 on bad usage.
//
//   fkv-parity --backends cpu,vulkan [--prompt TEXT | --prompt-file FILE] [--tolerance X] [--json]
//              [--n-gen N]   # then N greedy decode steps: the first backend picks the tokens, the others are
//                            # fed the same ones; every step's logits are compared and the argmax must agree
//
// Test hook (undocumented in --help): FKV_PARITY_PERTURB=1 adds noise to one layer's hidden state as
// read back from the second backend, so that a test can show the tool fails when a kernel is wrong.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "common/cli_options.h"
#include "common/cli_parse.h"
#include "common/model_loader.h"
#include "common/parity_metrics.h"
#include "common/prompt_tokens.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "model/llama_hparams.h"
#include "util/error.h"

namespace {

using namespace fkv;
using namespace fkv::tools;
using json = nlohmann::json;

constexpr const char* kDefaultPrompt =
    "The quick brown fox jumps over the lazy dog. In 1969, astronauts first walked on the Moon; "
    "the mission was called";

// One backend's record of the forward pass: hidden[0] after the embedding, hidden[l + 1] after block l.
struct Run {
  std::string backend, device;
  std::vector<std::vector<float>> hidden;
  std::vector<float> logits;        // [n, vocab]
  std::vector<int32_t> generated;   // --n-gen: the greedy tokens (the reference's choice for the others)
  std::vector<int32_t> own_choice;  // this backend's argmax at each decode step
};

// forced: the decode tokens to feed (another backend's greedy choice); null: choose greedily.
Run run_on(const CommonOptions& base, const std::string& backend, const std::vector<int32_t>& tokens,
           int batch, bool perturb, int n_gen, const std::vector<int32_t>* forced) {
  CommonOptions o = base;
  o.backend = backend;
  LoadedModel m = load_model(o, /*quiet=*/true);
  const LlamaHparams& hp = m.model->hparams();
  SessionOptions so;
  so.ctx = o.ctx > 0 ? o.ctx : int(tokens.size()) + n_gen;
  so.kv = kv_options(o);
  so.max_batch = batch;
  Session session(*m.model, so);

  Run run;
  run.backend = backend;
  run.device = m.backend->device_name();
  run.hidden.resize(size_t(hp.n_layers) + 1);
  const int perturbed_layer = hp.n_layers / 2;
  std::mt19937 rng(1234);
  session.on_hidden = [&](int layer, const float* x, int n, int dim) {
    std::vector<float>& dst = run.hidden[size_t(layer + 1)];
    const size_t start = dst.size();
    dst.insert(dst.end(), x, x + size_t(n) * dim);  // prefill chunks append
    if (perturb && layer == perturbed_layer) {
      std::normal_distribution<float> noise(0.0f, 0.05f);
      for (size_t i = start; i < dst.size(); ++i) dst[i] += noise(rng) * (std::fabs(dst[i]) + 0.1f);
    }
  };
  run.logits = session.eval(tokens, /*all_logits=*/true);
  const int64_t vocab = int64_t(run.logits.size() / tokens.size());
  for (int step = 0; step < n_gen; ++step) {
    const float* last = run.logits.data() + run.logits.size() - size_t(vocab);
    const int32_t mine = Sampler::argmax(last, vocab);
    run.own_choice.push_back(mine);
    const int32_t next = forced ? (*forced)[size_t(step)] : mine;
    run.generated.push_back(next);
    const std::vector<float>& l = session.eval(std::span(&next, 1));
    run.logits.insert(run.logits.end(), l.begin(), l.end());
  }
  return run;
}

json metrics_json(const ParityMetrics& m, bool logits) {
  json j = {{"max_abs", m.max_abs}, {"max_rel", m.max_rel}, {"min_cosine", m.min_cosine}, {"nmse", m.nmse}};
  if (logits) {
    j["argmax_agreement"] = m.argmax_agreement;
    j["kl"] = m.kl;
    j["max_kl"] = m.max_kl;
  }
  return j;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = std::min(s.find(',', at), s.size());
    out.push_back(s.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

int parity_main(int argc, char** argv) {
  CLI::App app{"Compare backends layer by layer on one model and prompt"};
  CommonOptions opts;
  add_common_options(app, opts, /*with_json=*/true);
  app.remove_option(app.get_option("--backend"));  // this tool takes a list
  std::string backends_arg, prompt, prompt_file;
  double tolerance = 1e-4, kl_tolerance = 1e-3;
  int n_tokens = 32;
  int batch = 256;
  uint64_t seed = 1;
  int n_gen = 0;
  app.add_option("--backends", backends_arg,
                 "comma-separated backends; the first is the reference (default: every compiled backend)");
  auto* p = app.add_option("--prompt", prompt, "prompt text (default: a fixed sentence)");
  app.add_option("--prompt-file", prompt_file, "read the prompt from a file")
      ->check(CLI::ExistingFile)
      ->excludes(p);
  app.add_option("--tolerance", tolerance, "largest normalised MSE allowed per layer and for the logits")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--kl-tolerance", kl_tolerance, "largest mean KL divergence of the final logits (nats)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--n-tokens", n_tokens, "random token ids to run when the model has no tokenizer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch,
                 "prefill chunk in tokens; a small one makes window/fourier caches compress within a short "
                 "prompt (a single chunk attends to itself exactly)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the random token ids")->capture_default_str();
  app.add_option(
         "--n-gen", n_gen,
         "greedy decode steps after the prompt (the first backend picks the tokens, the others are fed "
         "the same ones); their logits are compared too and every backend's argmax must agree")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  std::vector<std::string> backends = backends_arg.empty() ? compiled_backends() : split(backends_arg);
  for (const std::string& b : backends)
    if (b != "cpu" && b != "vulkan" && b != "cuda") {
      std::fprintf(stderr, "fkv-parity: unknown backend '%s' in --backends (expected cpu, vulkan, cuda)\n",
                   b.c_str());
      return kExitBadInput;
    }
  if (backends.size() < 2) {
    std::fprintf(stderr,
                 "fkv-parity: need two backends to compare (this build has only %s; try --backends cpu,cpu "
                 "to check the CPU against itself)\n",
                 backends.front().c_str());
    return kExitBadInput;
  }

  opts.model = resolve_model_path(opts);
  std::vector<int32_t> tokens;
  {
    const auto file = GgufFile::open(opts.model);
    if (!prompt_file.empty()) prompt = read_text_file(prompt_file);
    if (has_tokenizer(*file)) {
      tokens = encode_prompt(*file, prompt.empty() ? kDefaultPrompt : prompt);
    } else {
      if (!prompt.empty()) {
        std::fprintf(stderr, "fkv-parity: %s has no tokenizer; cannot encode the prompt\n",
                     opts.model.c_str());
        return kExitBadInput;
      }
      tokens = random_tokens(n_tokens, int(read_llama_hparams(*file).vocab), seed);
    }
  }
  require(!tokens.empty(), ErrorCode::kInvalidArgument, "the prompt has no tokens");

  const char* perturb_env = std::getenv("FKV_PARITY_PERTURB");
  const bool perturb = perturb_env && std::string(perturb_env) == "1";
  std::vector<Run> runs;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (!opts.json)
      std::fprintf(stderr, "running %zu tokens on %s ...\n", tokens.size(), backends[i].c_str());
    runs.push_back(run_on(opts, backends[i], tokens, batch, perturb && i == 1, n_gen,
                          i == 0 ? nullptr : &runs[0].generated));
  }

  const size_t n = tokens.size() + size_t(n_gen);
  const size_t dim = runs[0].hidden[0].size() / n;
  const size_t vocab = runs[0].logits.size() / n;
  const Run& ref = runs[0];
  bool all_passed = true;
  json report = {{"model", opts.model},
                 {"tokens", tokens.size()},
                 {"n_gen", n_gen},
                 {"batch", batch},
                 {"kv", opts.kv},
                 {"reference", ref.backend},
                 {"tolerance", tolerance},
                 {"kl_tolerance", kl_tolerance},
                 {"comparisons", json::array()}};
  for (size_t r = 1; r < runs.size(); ++r) {
    const Run& test = runs[r];
    json layers = json::array();
    std::string first_failing;
    if (!opts.json) {
      std::printf("\n%s (%s) vs %s (%s): %zu tokens, kv %s, tolerance nmse %.1e, kl %.1e\n",
                  ref.backend.c_str(), ref.device.c_str(), test.backend.c_str(), test.device.c_str(), n,
                  opts.kv.c_str(), tolerance, kl_tolerance);
      std::printf("%-7s %11s %11s %11s %11s\n", "layer", "max_abs", "max_rel", "min_cos", "nmse");
    }
    for (size_t l = 0; l < ref.hidden.size(); ++l) {
      const ParityMetrics m = compare_tensors(ref.hidden[l], test.hidden[l], n, dim);
      const std::string name = l == 0 ? "embd" : std::to_string(l - 1);
      const bool over = !(m.nmse <= tolerance);
      if (over && first_failing.empty()) first_failing = name;
      json j = metrics_json(m, false);
      j["layer"] = name;
      j["passed"] = !over;
      layers.push_back(j);
      if (!opts.json)
        std::printf("%-7s %11.3e %11.3e %11.7f %11.3e%s\n", name.c_str(), m.max_abs, m.max_rel, m.min_cosine,
                    m.nmse, over ? "  <-- over tolerance" : "");
    }
    ParityMetrics lm = compare_tensors(ref.logits, test.logits, n, vocab);
    add_logit_metrics(lm, ref.logits, test.logits, n, vocab);
    // The decode steps' greedy choices: the same as the reference's at every step (a step's choice is the
    // argmax of the logits before it, so this is also "the same greedy tokens").
    int greedy_same = 0, first_diverging = -1;
    for (int step = 0; step < n_gen; ++step) {
      const bool same = test.own_choice[size_t(step)] == ref.own_choice[size_t(step)];
      greedy_same += same;
      if (!same && first_diverging < 0) first_diverging = step;
    }
    const bool logits_over = !(lm.nmse <= tolerance) || !(lm.kl <= kl_tolerance) || greedy_same != n_gen;
    if (logits_over && first_failing.empty()) first_failing = "logits";
    const bool passed = first_failing.empty();
    all_passed = all_passed && passed;
    json logits = metrics_json(lm, true);
    logits["passed"] = !logits_over;
    if (n_gen > 0) {
      logits["greedy_steps"] = n_gen;
      logits["greedy_same"] = greedy_same;
      logits["first_diverging_step"] = first_diverging < 0 ? json(nullptr) : json(first_diverging);
    }
    report["comparisons"].push_back({{"backend", test.backend},
                                     {"device", test.device},
                                     {"layers", layers},
                                     {"logits", logits},
                                     {"passed", passed},
                                     {"first_failing_layer", passed ? json(nullptr) : json(first_failing)}});
    if (!opts.json) {
      std::printf("%-7s %11.3e %11.3e %11.7f %11.3e%s\n", "logits", lm.max_abs, lm.max_rel, lm.min_cosine,
                  lm.nmse, logits_over ? "  <-- over tolerance" : "");
      std::printf("argmax agreement %.1f%% (%zu positions), KL mean %.3e max %.3e nats\n",
                  100 * lm.argmax_agreement, n, lm.kl, lm.max_kl);
      if (n_gen > 0)
        std::printf("greedy decode: same token at %d of %d steps%s\n", greedy_same, n_gen,
                    first_diverging < 0
                        ? ""
                        : (", first difference at step " + std::to_string(first_diverging)).c_str());
      if (passed)
        std::printf("PASS: every layer within tolerance\n");
      else
        std::printf("FAIL: first layer over tolerance: %s\n", first_failing.c_str());
    }
  }
  report["passed"] = all_passed;
  if (opts.json) std::printf("%s\n", report.dump(2).c_str());
  return all_passed ? kExitOk : kExitCheckFailed;
}

}  // namespace

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-parity", parity_main, argc, argv);
}
