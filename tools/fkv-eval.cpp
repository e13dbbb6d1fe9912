// fkv-eval: long-context quality of a model under a KV cache policy.
//
//   fkv-eval passkey --lengths 2048,4096,8192 --depths 0.1,0.5,0.9 [--trials N] [--haystack FILE] [--plot
//   out.png] fkv-eval perplexity --text FILE --ctx 2048,4096,8192 [--chunks N]
//
// passkey: a 5-digit key is stated once at each depth of a filler text (Paul Graham's essays by default)
// of each length, then asked for at the end; the greedy answer scores 1 when its first number is the key.
// perplexity: the text is cut into chunks of each context length; each chunk is run from position 0 and
// its second half is scored, teacher-forced (the llama.cpp convention, so every scored token sees at least
// ctx/2 tokens of context, where compressed policies differ from the full cache).
// Both run with the KV policy given by --kv and its budget options, one policy per run.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cli_options.h"
#include "common/cli_parse.h"
#include "common/log_prob.h"
#include "common/model_loader.h"
#include "common/passkey.h"
#include "common/prompt_tokens.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

using namespace fkv;
using namespace fkv::tools;
using json = nlohmann::json;
namespace fs = std::filesystem;

std::string shared_data(const char* name) {
  return (fs::path(FKV_SOURCE_DIR) / ".." / "shared" / "data" / name).lexically_normal().string();
}

struct PasskeyArgs {
  std::vector<int> lengths{2048, 4096, 8192};
  std::vector<double> depths{0.1, 0.5, 0.9};
  int trials = 1;
  int answer_tokens = 8;
  uint64_t seed = 1;
  std::string haystack, plot;
};

struct PerplexityArgs {
  std::string text;
  std::vector<int> ctx{2048, 4096, 8192};
  int chunks = 0;
  int batch = 256;
};

// The python that has matplotlib: $FKV_PYTHON, the project's venv (tools/python-env.sh), else python3.
std::string find_plot_python() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("FKV_PYTHON"); p && *p) candidates.push_back(p);
  if (const char* v = std::getenv("FKV_VENV"); v && *v) candidates.push_back(std::string(v) + "/bin/python");
  candidates.push_back(std::string(FKV_SOURCE_DIR) + "/.venv/bin/python");
  candidates.push_back("python3");
  for (const std::string& py : candidates) {
    if (py.find('/') != std::string::npos && !fs::exists(py)) continue;
    const std::string cmd = "'" + py + "' -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

int plot_heatmap(const json& results, const std::string& out_png) {
  const std::string py = find_plot_python();
  if (py.empty()) {
    std::fprintf(
        stderr,
        "fkv-eval: --plot needs Python with matplotlib, and none was found ($FKV_PYTHON, the project venv "
        "at .venv, python3). Install it, e.g.: py=$(tools/python-env.sh) && \"$py\" -m pip install "
        "matplotlib; the results above are complete without the plot.\n");
    return kExitCheckFailed;
  }
  const fs::path data = fs::temp_directory_path() / ("fkv-eval-" + std::to_string(::getpid()) + ".json");
  {
    std::FILE* f = std::fopen(data.c_str(), "w");
    require(f != nullptr, ErrorCode::kIo, "cannot write " + data.string());
    const std::string text = results.dump();
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  const std::string script = std::string(FKV_SOURCE_DIR) + "/tools/eval/plot_heatmap.py";
  const std::string cmd = "'" + py + "' '" + script + "' '" + data.string() + "' '" + out_png + "'";
  const int rc = std::system(cmd.c_str());
  fs::remove(data);
  if (rc != 0) {
    std::fprintf(stderr, "fkv-eval: the plot script failed (%s)\n", cmd.c_str());
    return kExitCheckFailed;
  }
  std::fprintf(stderr, "fkv-eval: wrote %s\n", out_png.c_str());
  return kExitOk;
}

int run_passkey(const CommonOptions& opts, const PasskeyArgs& a) {
  LoadedModel m = load_model(opts, opts.json);
  const auto tok = Tokenizer::from_gguf(*m.file);
  PasskeyBuilder builder(
      *tok, read_haystack(a.haystack.empty() ? shared_data("PaulGrahamEssays.json") : a.haystack));
  json results = json::array();
  int total_correct = 0, total = 0;
  const auto t_start = std::chrono::steady_clock::now();
  for (int length : a.lengths) {
    SessionOptions so;
    so.ctx = length;
    so.kv = kv_options(opts);
    Session session(*m.model, so);
    for (double depth : a.depths) {
      int correct = 0;
      json answers = json::array();
      for (int t = 0; t < a.trials; ++t) {
        // The prompt plus the answer fill the context exactly.
        const PasskeyPrompt p = builder.build(length - a.answer_tokens, depth, a.seed + 7919u * uint64_t(t));
        session.reset();
        const std::vector<float>* logits = &session.eval(p.tokens);
        std::string answer;
        for (int i = 0; i < a.answer_tokens; ++i) {
          const int32_t id = Sampler::argmax(logits->data(), int64_t(logits->size()));
          if (tok->is_end_of_generation(id)) break;
          answer += tok->token_bytes(id);
          if (!first_number(answer).empty() && answer.find_last_not_of("0123456789") == answer.size() - 1)
            break;
          if (i + 1 < a.answer_tokens) logits = &session.eval(std::span(&id, 1));
        }
        const bool ok = first_number(answer) == p.passkey;
        correct += ok;
        answers.push_back({{"passkey", p.passkey}, {"answer", answer}, {"correct", ok}});
        if (!opts.json)
          std::fprintf(stderr, "length %d depth %.2f trial %d: key %s, answer \"%s\" %s\n", length, depth, t,
                       p.passkey.c_str(), answer.c_str(), ok ? "ok" : "wrong");
      }
      total_correct += correct;
      total += a.trials;
      results.push_back({{"length", length},
                         {"depth", depth},
                         {"trials", a.trials},
                         {"correct", correct},
                         {"accuracy", double(correct) / a.trials},
                         {"answers", answers}});
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  const json report = {{"task", "passkey"},
                       {"model", resolve_model_path(opts)},
                       {"backend", m.backend->name()},
                       {"kv", opts.kv},
                       {"sink", opts.sink},
                       {"window", opts.window},
                       {"fourier_n", opts.fourier_n},
                       {"fourier_ratio", opts.fourier_ratio},
                       {"results", results},
                       {"accuracy", total ? double(total_correct) / total : 0.0},
                       {"seconds", seconds}};
  if (opts.json) {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    std::printf("passkey retrieval, kv %s, %d trial(s) per cell: accuracy (correct/trials)\n",
                opts.kv.c_str(), a.trials);
    std::printf("%8s", "length");
    for (double d : a.depths) std::printf("  depth %-5.2f", d);
    std::printf("\n");
    size_t i = 0;
    for (int length : a.lengths) {
      std::printf("%8d", length);
      for (size_t k = 0; k < a.depths.size(); ++k, ++i)
        std::printf("  %5.2f (%d/%d)", results[i]["accuracy"].get<double>(), results[i]["correct"].get<int>(),
                    a.trials);
      std::printf("\n");
    }
    std::printf("overall %.3f (%d/%d) in %.0f s\n", report["accuracy"].get<double>(), total_correct, total,
                seconds);
  }
  if (!a.plot.empty()) return plot_heatmap(report, a.plot);
  return kExitOk;
}

int run_perplexity(const CommonOptions& opts, const PerplexityArgs& a) {
  LoadedModel m = load_model(opts, opts.json);
  const auto tok = Tokenizer::from_gguf(*m.file);
  const std::string path = a.text.empty() ? shared_data("wikitext-2-raw-test.txt") : a.text;
  const std::vector<int32_t> ids = tok->encode(read_text_file(path), false, false);
  const int vocab = m.model->hparams().vocab;
  const int32_t bos = tok->add_bos_by_default() ? tok->bos_id() : -1;
  json results = json::array();
  for (int ctx : a.ctx) {
    require(ctx >= 4, ErrorCode::kInvalidArgument, "--ctx values must be at least 4");
    const size_t body = size_t(ctx) - (bos >= 0 ? 1 : 0);  // text tokens per chunk
    size_t n_chunks = ids.size() / body;
    if (a.chunks > 0) n_chunks = std::min(n_chunks, size_t(a.chunks));
    require(n_chunks > 0, ErrorCode::kInvalidArgument,
            path + " has " + std::to_string(ids.size()) + " tokens, fewer than one chunk of " +
                std::to_string(ctx));
    SessionOptions so;
    so.ctx = ctx;
    so.max_batch = a.batch;
    so.kv = kv_options(opts);
    Session session(*m.model, so);
    double nll = 0, nll2 = 0;
    size_t scored = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t c = 0; c < n_chunks; ++c) {
      std::vector<int32_t> chunk;
      if (bos >= 0) chunk.push_back(bos);
      chunk.insert(chunk.end(), ids.begin() + long(c * body), ids.begin() + long((c + 1) * body));
      session.reset();
      const size_t half = size_t(ctx) / 2;
      auto score = [&](const float* logits, size_t target_pos) {
        const double v = token_nll(logits, vocab, chunk[target_pos]);
        nll += v;
        nll2 += v * v;
        ++scored;
      };
      // The first half is context only; its last logits predict the first scored token.
      score(session.eval(std::span(chunk.data(), half)).data(), half);
      // The rest with every position's logits, a slice at a time (a whole chunk's would be GiBs).
      for (size_t s = half; s < chunk.size(); s += size_t(a.batch)) {
        const size_t n = std::min(size_t(a.batch), chunk.size() - s);
        const std::vector<float>& all = session.eval(std::span(chunk.data() + s, n), /*all_logits=*/true);
        for (size_t i = 0; i < n && s + i + 1 < chunk.size(); ++i)
          score(all.data() + i * size_t(vocab), s + i + 1);
      }
      if (!opts.json)
        std::fprintf(stderr, "ctx %d: chunk %zu/%zu, perplexity so far %.4f\n", ctx, c + 1, n_chunks,
                     std::exp(nll / double(scored)));
    }
    const double mean = nll / double(scored);
    const double var = std::max(0.0, nll2 / double(scored) - mean * mean);
    const double ppl = std::exp(mean);
    const double ppl_err =
        ppl * std::sqrt(var / double(scored));  // delta method, tokens treated as independent
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results.push_back({{"ctx", ctx},
                       {"chunks", n_chunks},
                       {"tokens_scored", scored},
                       {"perplexity", ppl},
                       {"perplexity_stderr", ppl_err},
                       {"mean_nll", mean},
                       {"seconds", seconds}});
  }
  const json report = {{"task", "perplexity"},
                       {"model", resolve_model_path(opts)},
                       {"text", path},
                       {"backend", m.backend->name()},
                       {"kv", opts.kv},
                       {"sink", opts.sink},
                       {"window", opts.window},
                       {"fourier_n", opts.fourier_n},
                       {"fourier_ratio", opts.fourier_ratio},
                       {"results", results}};
  if (opts.json) {
    std::printf("%s\n", report.dump(2).c_str());
    return kExitOk;
  }
  std::printf("perplexity of %s, kv %s\n%8s %8s %10s %14s %9s\n", path.c_str(), opts.kv.c_str(), "ctx",
              "chunks", "scored", "perplexity", "seconds");
  for (const json& r : results)
    std::printf("%8d %8zu %10zu %8.4f ± %.3f %9.1f\n", r["ctx"].get<int>(), r["chunks"].get<size_t>(),
                r["tokens_scored"].get<size_t>(), r["perplexity"].get<double>(),
                r["perplexity_stderr"].get<double>(), r["seconds"].get<double>());
  return kExitOk;
}

int eval_main(int argc, char** argv) {
  CLI::App app{"Long-context quality: passkey retrieval and perplexity, per KV cache policy"};
  app.require_subcommand(1);
  CommonOptions pk_opts, ppl_opts;
  PasskeyArgs pk;
  PerplexityArgs ppl;

  CLI::App* passkey = app.add_subcommand("passkey", "needle in a haystack: retrieve a 5-digit key");
  add_common_options(*passkey, pk_opts, /*with_json=*/true);
  passkey->remove_option(passkey->get_option("--ctx"));  // each length is its own context
  passkey->add_option("--lengths", pk.lengths, "comma-separated prompt lengths in tokens (prompt + answer)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  passkey->add_option("--depths", pk.depths, "comma-separated depths of the key in the filler, 0..1")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  passkey->add_option("--trials", pk.trials, "keys tried per cell")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  passkey->add_option("--answer-tokens", pk.answer_tokens, "greedy tokens generated for the answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  passkey->add_option("--seed", pk.seed, "seed of the keys")->capture_default_str();
  passkey
      ->add_option("--haystack", pk.haystack,
                   "filler text file (or JSON with \"text\"; default: "
                   "../shared/data/PaulGrahamEssays.json)")
      ->check(CLI::ExistingFile);
  passkey->add_option("--plot", pk.plot, "write a heatmap PNG (needs Python with matplotlib)");

  CLI::App* perplexity = app.add_subcommand("perplexity", "perplexity of a text at several context lengths");
  add_common_options(*perplexity, ppl_opts, /*with_json=*/true);
  perplexity->remove_option(perplexity->get_option("--ctx"));
  perplexity->add_option("--ctx", ppl.ctx, "comma-separated context lengths")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  perplexity->add_option("--text", ppl.text, "text file (default: ../shared/data/wikitext-2-raw-test.txt)")
      ->check(CLI::ExistingFile);
  perplexity->add_option("--chunks", ppl.chunks, "at most this many chunks per context length; 0: all")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  perplexity->add_option("--batch", ppl.batch, "tokens per forward pass")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;

  if (passkey->parsed()) return run_passkey(pk_opts, pk);
  return run_perplexity(ppl_opts, ppl);
}

}  // namespace

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-eval", eval_main, argc, argv);
}
