// fkv-bench: prefill and decode speed at chosen context depths, with the memory it takes.
//
//   fkv-bench --n-prompt N --n-gen N --depth 0,4096,32768 --reps R [--backend B] [--kv P] [--json]
//   [--profile | --profile-phases]
//
// Each depth gets a session of its own whose context is depth + n-prompt + n-gen (--ctx: that size for
// every depth), as llama-bench sizes one per test, so a shallow run does not carry a deep run's cache.
// For each depth and repetition: the session is reset and filled to the depth with untimed prefill, then
// n-prompt tokens are prefilled (timed) and n-gen tokens decoded one at a time (timed, so decode starts at
// depth + n-prompt), greedily (Session::eval_argmax: the argmax on the device where the backend takes it).
// Token ids are pseudo-random, so random-weight models without a tokenizer work; the speed does not depend on
// the ids. Reports the median tokens/s with min, max and standard deviation.
// --profile (Vulkan): after the timed repetitions of each depth, one more, untimed, with every dispatch
// timed on the GPU; its prefill and its decode each print a per-shader table on stderr (docs/VULKAN.md).
// --profile-phases: the same repetition timed by phase (the work between two barriers, as it runs: what
// each phase costs the step) instead of by dispatch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cli_options.h"
#include "common/cli_parse.h"
#include "common/memory_estimate.h"
#include "common/model_loader.h"
#include "common/prompt_tokens.h"
#include "common/stats.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "util/error.h"
#ifdef FKV_HAVE_VULKAN
#include "backend/vulkan/vulkan_backend.h"
#endif

namespace {

using namespace fkv;
using namespace fkv::tools;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kMiB = 1024.0 * 1024.0;

struct DepthResult {
  int depth = 0;
  int ctx = 0;              // the session's context
  Summary prefill, decode;  // tokens/s over the repetitions
  KvMemoryReport kv;        // after the last repetition's decode
  size_t activations = 0;
  json profile;  // --profile: {"prefill": ..., "decode": ...}
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

json summary_json(const Summary& s) {
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"mean", s.mean}, {"stdev", s.stdev}};
}

// --profile: the Vulkan GPU profile of one timed section (prefill or decode), started before it by
// start_profile; prints the table on stderr under a heading and returns it as JSON (null without one).
bool start_profile(Backend& backend, bool phases) {
#ifdef FKV_HAVE_VULKAN
  return vulkan_set_profile(backend, true,
                            phases ? VulkanProfileMode::kPhases : VulkanProfileMode::kDispatches);
#else
  (void)backend;
  (void)phases;
  return false;
#endif
}

json finish_profile(Backend& backend, const std::string& heading) {
#ifdef FKV_HAVE_VULKAN
  const VulkanProfile p = vulkan_profile(backend);
  if (!p.on) return nullptr;
  std::fprintf(stderr, "fkv-bench: GPU profile of %s\n", heading.c_str());
  vulkan_print_profile(backend);
  vulkan_set_profile(backend, false);
  json shaders = json::array();
  const bool phases = p.mode == VulkanProfileMode::kPhases;
  for (const VulkanShaderTime& s : p.shaders) {
    if (phases)
      shaders.push_back(
          {{"phase", s.name}, {"calls", s.calls}, {"dispatches", s.dispatches}, {"total_us", s.total_us}});
    else
      shaders.push_back({{"shader", s.name}, {"calls", s.calls}, {"total_us", s.total_us}});
  }
  return {{"mode", phases ? "phases" : "dispatches"},
          {phases ? "phases" : "shaders", shaders},
          {"dispatches", p.dispatches},
          {"dispatch_us", p.dispatch_us},
          {"command_buffers", p.command_buffers},
          {"busy_us", p.busy_us},
          {"gap_us", std::max(0.0, p.busy_us - p.dispatch_us)},
          {"span_us", p.span_us}};
#else
  (void)backend;
  (void)heading;
  return nullptr;
#endif
}

int bench_main(int argc, char** argv) {
  CLI::App app{"Prefill and decode speed at several context depths"};
  CommonOptions opts;
  add_common_options(app, opts, /*with_json=*/true);
  int n_prompt = 512, n_gen = 128, reps = 3, batch = 256, warmup = 1;
  std::vector<int> depths{0};
  uint64_t seed = 1;
  std::string fill_mode = "prefill";
  app.add_option("--n-prompt,-p", n_prompt, "tokens prefilled (timed) at each depth; 0: skip")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--n-gen,-n", n_gen, "tokens decoded (timed) after the prefill; 0: skip")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--depth,-d", depths, "comma-separated context depths to fill before timing")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--reps,-r", reps, "repetitions per depth")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed repetitions per depth before the timed ones")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", batch, "prefill chunk (tokens per forward pass)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the token ids")->capture_default_str();
  app.add_option("--fill", fill_mode,
                 "how the context reaches each depth: prefill (a real forward pass) or synthetic (random K/V "
                 "stored through the KV policy; decode speed is the same, the fill takes far less time)")
      ->check(CLI::IsMember({"prefill", "synthetic"}))
      ->capture_default_str();
  bool profile = false;
  app.add_flag(
      "--profile", profile,
      "Vulkan: one more, untimed repetition per depth with every dispatch timed on the GPU; per-shader "
      "tables of its prefill and decode on stderr (and in --json)");
  bool profile_phases = false;
  app.add_flag("--profile-phases", profile_phases,
               "Vulkan: as --profile, but timing each phase between two barriers as it runs (its dispatches "
               "overlapping as unprofiled) instead of each dispatch alone")
      ->excludes("--profile");
  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  if (n_prompt == 0 && n_gen == 0) {
    std::fprintf(stderr, "fkv-bench: nothing to time: --n-prompt and --n-gen are both 0\n");
    return kExitBadInput;
  }

  const int max_depth = *std::max_element(depths.begin(), depths.end());
  const int needed = max_depth + n_prompt + n_gen;
  if (opts.ctx > 0 && opts.ctx < needed) {
    std::fprintf(stderr, "fkv-bench: --ctx %d is too small for depth %d + %d prompt + %d generated tokens\n",
                 opts.ctx, max_depth, n_prompt, n_gen);
    return kExitBadInput;
  }
  profile = profile || profile_phases;
  LoadedModel m = load_model(opts, opts.json);
  if (profile && m.backend->name() != "vulkan") {
    std::fprintf(stderr, "fkv-bench: --profile times Vulkan dispatches; the %s backend runs without it\n",
                 m.backend->name().c_str());
    profile = false;
  }
  const LlamaHparams& hp = m.model->hparams();
  // Just enough for the depth: the KV cache is allocated for all of it (and a decode step's attention is
  // planned for the whole cache on the GPUs).
  const auto ctx_for = [&](int depth) { return opts.ctx > 0 ? opts.ctx : depth + n_prompt + n_gen; };
  const auto session_options = [&](int depth) {
    SessionOptions so;
    so.ctx = ctx_for(depth);
    so.max_batch = batch;
    so.kv = kv_options(opts);
    return so;
  };
  const bool synthetic_fill = fill_mode == "synthetic";
  const std::vector<int32_t> fill = random_tokens(max_depth, hp.vocab, seed);
  const std::vector<int32_t> prompt = random_tokens(n_prompt, hp.vocab, seed + 1);

  if (!opts.json)
    std::fprintf(stderr, "%s on %s (%s), kv %s, ctx %s: %d prompt + %d generated tokens, %d reps\n",
                 hp.name.empty() ? "model" : hp.name.c_str(), m.backend->name().c_str(),
                 m.backend->device_name().c_str(), opts.kv.c_str(),
                 opts.ctx > 0 ? std::to_string(opts.ctx).c_str() : "depth + prompt + generated", n_prompt,
                 n_gen, reps);
  std::vector<DepthResult> results;
  for (int depth : depths) {
    DepthResult r;
    r.depth = depth;
    Session session(*m.model, session_options(depth));
    r.ctx = session.ctx();
    std::vector<double> pp, tg;
    // One repetition; with profile, an untimed one whose prefill and decode are profiled instead.
    auto run = [&](bool profiled) {
      session.reset();
      const std::vector<float>* logits = nullptr;
      if (depth > 0 && synthetic_fill) session.fill_synthetic(depth, seed);
      if (depth > 0 && !synthetic_fill) logits = &session.eval(std::span(fill.data(), size_t(depth)));
      const std::string at = " at depth " + std::to_string(depth);
      if (n_prompt > 0) {
        if (profiled && !start_profile(*m.backend, profile_phases)) return;
        const auto t0 = Clock::now();
        logits = &session.eval(prompt);  // returns after the logits are read back: the work is done
        if (profiled)
          r.profile["prefill"] =
              finish_profile(*m.backend, "the prefill of " + std::to_string(n_prompt) + " tokens" + at);
        else
          pp.push_back(n_prompt / seconds_since(t0));
      }
      if (n_gen > 0) {
        int32_t next = logits           ? Sampler::argmax(logits->data(), int64_t(logits->size()))
                       : prompt.empty() ? 1
                                        : prompt[0];
        if (profiled && !start_profile(*m.backend, profile_phases)) return;
        const auto t0 = Clock::now();
        // Greedy: the argmax on the device where the backend takes it (Session::eval_argmax).
        for (int i = 0; i < n_gen; ++i) next = session.eval_argmax(std::span(&next, 1));
        if (profiled)
          r.profile["decode"] = finish_profile(*m.backend, std::to_string(n_gen) + " decoded tokens" + at);
        else
          tg.push_back(n_gen / seconds_since(t0));
      }
    };
    // Untimed first: shader pipelines specialised for this depth's shapes, scratch buffers and the decode
    // replay are made on first use, and would otherwise land in the first timed repetition.
    for (int rep = 0; rep < warmup; ++rep) run(false);
    pp.clear();
    tg.clear();
    for (int rep = 0; rep < reps; ++rep) run(false);
    if (profile) run(true);
    r.prefill = summarize(pp);
    r.decode = summarize(tg);
    r.kv = session.kv_memory();
    r.activations = activation_bytes_estimate(hp, std::min(batch, session.ctx()));
    results.push_back(r);
    if (!opts.json) std::fprintf(stderr, "depth %d done\n", depth);
  }

  const size_t weights = m.model->weight_bytes();
  if (opts.json) {
    json j = {{"model", opts.model.empty() ? resolve_model_path(opts) : opts.model},
              {"backend", m.backend->name()},
              {"device", m.backend->device_name()},
              {"kv", opts.kv},
              {"ctx", ctx_for(max_depth)},  // the deepest depth's; each result has its own
              {"n_prompt", n_prompt},
              {"n_gen", n_gen},
              {"reps", reps},
              {"warmup", warmup},
              {"fill", fill_mode},
              {"batch", batch},
              {"weight_bytes", weights},
              {"results", json::array()}};
    for (const DepthResult& r : results) {
      json d = {{"depth", r.depth},
                {"ctx", r.ctx},
                {"kv_allocated_bytes", r.kv.allocated},
                {"kv_used_bytes", r.kv.used()},
                {"kv_parts",
                 {{"sink", r.kv.sink},
                  {"middle_kept", r.kv.middle_kept},
                  {"coefficients", r.kv.coefficients},
                  {"window", r.kv.window},
                  {"middle_pending", r.kv.middle_pending}}},
                {"activation_bytes_estimate", r.activations},
                {"device_bytes_total", weights + r.kv.allocated + r.activations}};
      if (!r.profile.is_null()) d["gpu_profile"] = r.profile;
      if (n_prompt > 0) d["prefill_tokens_per_s"] = summary_json(r.prefill);
      if (n_gen > 0) d["decode_tokens_per_s"] = summary_json(r.decode);
      j["results"].push_back(d);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%s %s, kv %s, weights %.1f MiB\n", m.backend->name().c_str(), m.backend->device_name().c_str(),
              opts.kv.c_str(), weights / kMiB);
  std::printf("%8s %22s %22s %11s %11s %11s\n", "depth", "prefill t/s [min-max]", "decode t/s [min-max]",
              "KV used MiB", "KV res. MiB", "total MiB");
  for (const DepthResult& r : results) {
    char pp[64] = "-", tg[64] = "-";
    if (n_prompt > 0)
      std::snprintf(pp, sizeof pp, "%.1f [%.1f-%.1f]", r.prefill.median, r.prefill.min, r.prefill.max);
    if (n_gen > 0)
      std::snprintf(tg, sizeof tg, "%.2f [%.2f-%.2f]", r.decode.median, r.decode.min, r.decode.max);
    std::printf("%8d %22s %22s %11.2f %11.2f %11.1f\n", r.depth, pp, tg, r.kv.used() / kMiB,
                r.kv.allocated / kMiB, (weights + r.kv.allocated + r.activations) / kMiB);
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-bench", bench_main, argc, argv);
}
