// The evaluation tools run end to end on the default model with tiny sizes: exit codes, JSON shape, and
// that fkv-parity catches a perturbed backend.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "backend/registry.h"
#include "test_paths.h"

namespace fkv::test {
namespace {

struct Result {
  int exit_code = -1;
  std::string out;  // stdout
};

// Runs a tool from the build folder with the default model, two CPU threads; stderr goes to the log.
// subcommand (fkv-eval's) comes before the shared options.
Result run_tool(const std::string& env, const std::string& tool, const std::string& args,
                const std::string& subcommand = "") {
  const std::string out_file =
      std::string(::testing::TempDir()) + "/fkv-tool-" + tool + "-" + std::to_string(::getpid()) + ".out";
  const std::string cmd = env + " '" + std::string(FKV_BINARY_DIR) + "/" + tool + "' " + subcommand +
                          " --model '" + default_model_path() + "' --threads 2 " + args + " > '" + out_file +
                          "'";
  const int status = std::system(cmd.c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(out_file);
  std::stringstream s;
  s << in.rdbuf();
  r.out = s.str();
  std::remove(out_file.c_str());
  return r;
}

nlohmann::json parse(const Result& r) {
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(ParityTool, CpuAgainstCpuPasses) {
  const Result r = run_tool("", "fkv-parity", "--backends cpu,cpu --prompt 'Hello there, friend.' --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = parse(r);
  EXPECT_TRUE(j["passed"].get<bool>());
  const auto& c = j["comparisons"][0];
  EXPECT_EQ(c["layers"].size(), 31u);  // embedding + 30 blocks
  EXPECT_EQ(c["logits"]["argmax_agreement"].get<double>(), 1.0);
  EXPECT_TRUE(c["first_failing_layer"].is_null());

  // Every policy runs through the same comparison (a Fourier cache with a small window and budget).
  const Result f =
      run_tool("", "fkv-parity",
               "--backends cpu,cpu --kv fourier --sink 4 --window 8 --fourier-n 16 --batch 4 --prompt "
               "'It was the best of times, it was the worst of times, it was the age of wisdom.' --json");
  ASSERT_EQ(f.exit_code, 0) << f.out;
  EXPECT_EQ(parse(f)["kv"].get<std::string>(), "fourier");

  // --n-gen: greedy decode steps after the prompt, compared too.
  const Result g =
      run_tool("", "fkv-parity", "--backends cpu,cpu --n-gen 3 --prompt 'Hello there, friend.' --json");
  ASSERT_EQ(g.exit_code, 0) << g.out;
  const auto jg = parse(g);
  EXPECT_EQ(jg["n_gen"].get<int>(), 3);
  EXPECT_EQ(jg["comparisons"][0]["logits"]["greedy_same"].get<int>(), 3);
}

// The product backend against the reference, wherever this build has it (lavapipe in CI).
TEST(ParityTool, CpuAgainstVulkanPasses) {
  const auto built = compiled_backends();
  if (std::find(built.begin(), built.end(), "vulkan") == built.end())
    GTEST_SKIP() << "this build has no Vulkan backend";
  const Result r = run_tool("", "fkv-parity", "--backends cpu,vulkan --prompt 'Hello there, friend.' --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(parse(r)["passed"].get<bool>());
}

TEST(ParityTool, APerturbedBackendFailsAtTheLayerItBroke) {
  const Result r = run_tool("FKV_PARITY_PERTURB=1", "fkv-parity",
                            "--backends cpu,cpu --prompt 'Hello there, friend.' --json");
  ASSERT_EQ(r.exit_code, 1) << r.out;
  const auto j = parse(r);
  EXPECT_FALSE(j["passed"].get<bool>());
  EXPECT_EQ(j["comparisons"][0]["first_failing_layer"].get<std::string>(), "15");  // n_layers / 2
}

TEST(ParityTool, BadUsageExitsTwo) {
  EXPECT_EQ(run_tool("", "fkv-parity", "--backends cpu").exit_code, 2);
  EXPECT_EQ(run_tool("", "fkv-parity", "--backends cpu,nope").exit_code, 2);
  EXPECT_EQ(run_tool("", "fkv-parity", "--no-such-flag").exit_code, 2);
}

TEST(BenchTool, ReportsSpeedAndMemoryPerDepth) {
  const Result r =
      run_tool("", "fkv-bench", "--backend cpu --n-prompt 8 --n-gen 3 --depth 0,16 --reps 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = parse(r);
  EXPECT_EQ(j["ctx"].get<int>(), 16 + 8 + 3);  // set from the largest depth when --ctx is not given
  ASSERT_EQ(j["results"].size(), 2u);
  // Each depth has a session of its own, just large enough.
  EXPECT_EQ(j["results"][0]["ctx"].get<int>(), 0 + 8 + 3);
  EXPECT_EQ(j["results"][1]["ctx"].get<int>(), 16 + 8 + 3);
  for (const auto& d : j["results"]) {
    EXPECT_GT(d["prefill_tokens_per_s"]["median"].get<double>(), 0);
    EXPECT_GT(d["decode_tokens_per_s"]["median"].get<double>(), 0);
    EXPECT_GT(d["kv_allocated_bytes"].get<double>(), 0);
    EXPECT_GT(d["device_bytes_total"].get<double>(), d["kv_allocated_bytes"].get<double>());
  }
  // 27 positions at the end of the deeper run: 30 layers x (K + V) x 3 heads x 64 dims x f16.
  EXPECT_EQ(j["results"][1]["kv_used_bytes"].get<size_t>(), 27u * 30 * 2 * 3 * 64 * 2);
  EXPECT_EQ(run_tool("", "fkv-bench", "--n-prompt 0 --n-gen 0").exit_code, 2);
  EXPECT_EQ(run_tool("", "fkv-bench", "--depth 100 --ctx 50").exit_code, 2);
}

TEST(EvalTool, PasskeyAndPerplexityRunSmall) {
  Result r = run_tool("", "fkv-eval", "--backend cpu --lengths 160 --depths 0.5 --json", "passkey");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = parse(r);
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["answers"][0]["passkey"].get<std::string>().size(), 5u);

  r = run_tool("", "fkv-eval", "--backend cpu --ctx 64 --chunks 2 --json", "perplexity");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  j = parse(r);
  const double ppl = j["results"][0]["perplexity"].get<double>();
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 1000.0);
  EXPECT_EQ(j["results"][0]["tokens_scored"].get<int>(), 2 * 32);
  EXPECT_EQ(run_tool("", "fkv-eval", "").exit_code, 2);
}

}  // namespace
}  // namespace fkv::test
