// The GPU profile (src/backend/vulkan/vulkan_profile.h): with profiling on, every dispatch is counted under
// its shader's name with a non-negative time, the totals are consistent (dispatches within the command
// buffers' busy time, that within the span), and a model's logits are bit-identical with profiling on and
// off (the timestamps change no result; replay, off while profiling, gives eager execution's results). By
// phase: every dispatch in exactly one phase, a phase for each barrier of the step, and the phases
// covering the command buffers' busy time.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "random_model_file.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

class ProfileTest : public VulkanTest {
 protected:
  void TearDown() override {
    vulkan_set_profile(*vk, false);
    vulkan_set_replay(*vk, true);
    VulkanTest::TearDown();
  }
};

// Calls per op: the subgroupAdd modules (*_subgroup, where the device has subgroup arithmetic) count under
// the plain name, and the GPU decode matvec (matvec, matvec_subgroup; lavapipe runs matmul for every n)
// under matmul, so that the counts are the same on every device; the GPU's fused decode matvecs
// (matvec_fused: q, k and v; gate, up and SwiGLU) under their own name.
std::map<std::string, uint64_t> calls_by_shader(const VulkanProfile& p) {
  const std::string suffix = "_subgroup";
  std::map<std::string, uint64_t> calls;
  for (const VulkanShaderTime& s : p.shaders) {
    std::string name = s.name;
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      name.resize(name.size() - suffix.size());
    if (name == "matvec") name = "matmul";
    calls[name] += s.calls;
  }
  return calls;
}

// Every shader's time non-negative, sorted largest first, summing to the dispatch total, which fits in the
// command buffers' busy time, which fits in the span.
void expect_consistent(const VulkanProfile& p) {
  EXPECT_TRUE(p.on);
  EXPECT_EQ(p.untimed, 0u);
  EXPECT_GT(p.command_buffers, 0u);
  double sum = 0;
  uint64_t calls = 0;
  for (size_t i = 0; i < p.shaders.size(); ++i) {
    EXPECT_GE(p.shaders[i].total_us, 0.0) << p.shaders[i].name;
    if (i > 0) {
      EXPECT_LE(p.shaders[i].total_us, p.shaders[i - 1].total_us);
    }
    sum += p.shaders[i].total_us;
    calls += p.shaders[i].calls;
  }
  EXPECT_EQ(calls, p.dispatches);
  EXPECT_NEAR(sum, p.dispatch_us, 1e-6 * p.dispatch_us + 1e-3);
  EXPECT_GT(p.dispatch_us, 0.0);
  EXPECT_LE(p.dispatch_us, p.busy_us * 1.01 + 1.0);
  EXPECT_LE(p.busy_us, p.span_us + 1e-3);
}

TEST_F(ProfileTest, CountsEveryDispatchUnderItsShader) {
  EXPECT_FALSE(vulkan_profile(*vk).on);
  ASSERT_TRUE(vulkan_set_profile(*vk, true)) << "lavapipe has timestamp queries";
  const int dim = 256;
  auto [x, xc] = both(random_floats(dim * 3, 1), "x");
  auto [w, wc] = both(random_floats(dim, 2), "w");
  BufferPtr out = vk->alloc(dim * 3 * 4, "out");
  for (int i = 0; i < 3; ++i) vk->rms_norm(*x, *w, 3, dim, 1e-5f, *out);
  for (int i = 0; i < 2; ++i) vk->swiglu(*x, *x, dim * 3, *out);
  const VulkanProfile p = vulkan_profile(*vk);
  expect_consistent(p);
  EXPECT_EQ(calls_by_shader(p), (std::map<std::string, uint64_t>{{"rms_norm", 3}, {"elementwise", 2}}));
  EXPECT_EQ(p.dispatches, 5u);

  // Turning it on again starts from zero; off, nothing is reported.
  ASSERT_TRUE(vulkan_set_profile(*vk, true));
  EXPECT_EQ(vulkan_profile(*vk).dispatches, 0u);
  vk->swiglu(*x, *x, dim * 3, *out);
  EXPECT_EQ(vulkan_profile(*vk).dispatches, 1u);
  vulkan_set_profile(*vk, false);
  EXPECT_FALSE(vulkan_profile(*vk).on);
}

constexpr int kDecodeSteps = 6;

// A prompt then kDecodeSteps decode steps of fixed ids; profiling (when asked) covers the
// decode steps only. Returns every eval's logits.
std::vector<std::vector<float>> decode(Backend& vk, const LlamaModel& model, bool profiled,
                                       VulkanProfileMode mode = VulkanProfileMode::kDispatches) {
  SessionOptions so;
  so.ctx = 64;
  Session s(model, so);
  std::vector<std::vector<float>> out;
  const std::vector<int32_t> prompt = {1, 7, 42, 300};
  out.push_back(s.eval(prompt));
  if (profiled) {
    EXPECT_TRUE(vulkan_set_profile(vk, true, mode));
  }
  for (int i = 0; i < kDecodeSteps; ++i) {
    const int32_t t = int32_t((i * 53 + 5) % 500);
    out.push_back(s.eval(std::span(&t, 1)));
  }
  return out;
}

TEST_F(ProfileTest, DecodeProfileMatchesTheStepsDispatchesAndLeavesLogitsUnchanged) {
  RandomModelFile m(*vk, "small", GgmlType::Q4_0);
  vulkan_set_replay(*vk, true);
  const auto plain = decode(*vk, *m.model, false);
  const uint32_t per_step = vulkan_replay_info(*vk).dispatches;  // the recorded decode step's
  ASSERT_GT(per_step, 0u) << "the unprofiled decode was not replayed";

  const auto profiled = decode(*vk, *m.model, true);
  const VulkanProfile p = vulkan_profile(*vk);
  vulkan_print_profile(*vk);  // the table, for the log
  vulkan_set_profile(*vk, false);

  ASSERT_EQ(plain.size(), profiled.size());
  for (size_t s = 0; s < plain.size(); ++s) {
    ASSERT_EQ(plain[s].size(), profiled[s].size());
    EXPECT_EQ(std::memcmp(plain[s].data(), profiled[s].data(), plain[s].size() * 4), 0)
        << "eval " << s << " differs with profiling on";
  }

  expect_consistent(p);
  EXPECT_EQ(p.dispatches, uint64_t(kDecodeSteps) * per_step);
  const auto calls = calls_by_shader(p);
  const uint64_t layers = uint64_t(m.model->hparams().n_layers), k = kDecodeSteps;
  EXPECT_EQ(calls.at("embed"), k);
  EXPECT_EQ(calls.at("rms_norm"), 2 * k);  // the first layer's norm and the output norm
  const bool cpu_kernels = runs_cpu_kernels(*vk);
  if (!cpu_kernels) {
    // The decode matvec: q k v as one dispatch, gate up + SwiGLU as one; o, down per layer, the logits.
    EXPECT_EQ(calls.at("matvec_fused"), 2 * layers * k);
    // With the norm fold, o and down carry the residual add and the next norm's sum of squares
    // (matvec_add_norm), but the last layer's down, whose sum feeds the output norm through a copy.
    const uint64_t folded = vulkan_norm_fold(*vk) ? 2 * layers - 1 : 0;
    EXPECT_EQ(calls.count("matvec_add_norm") ? calls.at("matvec_add_norm") : 0, folded * k);
    EXPECT_EQ(calls.at("matmul"), (2 * layers + 1 - folded) * k);
    // SwiGLU is folded into gate/up; the one elementwise dispatch left is the last layer's residual add,
    // whose sum feeds the output norm unfused (rms_norm above).
    EXPECT_EQ(calls.at("elementwise"), k);
    // RoPE of q and K and the store of K and V fold into the q/k/v matvec (matvec_fused.comp ROPE_STORE 1).
    EXPECT_EQ(calls.count("rope_kv_store"), 0u);
  } else {
    EXPECT_EQ(calls.at("matmul"), (7 * layers + 1) * k);  // q k v o gate up down per layer, the logits
    // RoPE of q and K and the store of K and V: one dispatch per layer.
    EXPECT_EQ(calls.at("rope_kv_store"), layers * k);
  }
  const uint64_t norms_folded = !cpu_kernels && vulkan_norm_fold(*vk) ? 2 * layers - 1 : 0;
  EXPECT_EQ(calls.count("add_rms_norm") ? calls.at("add_rms_norm") : 0, (2 * layers - 1 - norms_folded) * k);
  // No other rope or kv_store dispatch.
  EXPECT_EQ(calls.count("rope"), 0u);
  EXPECT_EQ(calls.count("kv_store"), 0u);
  for (const auto& [name, n] : calls) EXPECT_EQ(n % k, 0u) << name << " is not the same in every step";
  EXPECT_TRUE(calls.count("attention_split"));
}

TEST_F(ProfileTest, PhasesCoverEveryDispatchAndBarrierAndLeaveLogitsUnchanged) {
  RandomModelFile m(*vk, "small", GgmlType::Q4_0);
  vulkan_set_replay(*vk, true);
  const auto plain = decode(*vk, *m.model, false);
  const VulkanReplayInfo info = vulkan_replay_info(*vk);  // the recorded decode step's
  ASSERT_GT(info.dispatches, 0u) << "the unprofiled decode was not replayed";

  const auto profiled = decode(*vk, *m.model, true, VulkanProfileMode::kPhases);
  const VulkanProfile p = vulkan_profile(*vk);
  vulkan_print_profile(*vk);  // the table, for the log
  vulkan_set_profile(*vk, false);

  ASSERT_EQ(plain.size(), profiled.size());
  for (size_t s = 0; s < plain.size(); ++s)
    EXPECT_EQ(std::memcmp(plain[s].data(), profiled[s].data(), plain[s].size() * 4), 0)
        << "eval " << s << " differs with profiling by phase on";

  EXPECT_TRUE(p.on);
  EXPECT_EQ(p.mode, VulkanProfileMode::kPhases);
  EXPECT_EQ(p.untimed, 0u);
  const uint64_t k = kDecodeSteps;
  uint64_t phases = 0, dispatches = 0;
  double sum = 0;
  bool attention = false, matmul = false;
  for (const VulkanShaderTime& s : p.shaders) {
    EXPECT_FALSE(s.name.empty());
    EXPECT_GE(s.total_us, 0.0) << s.name;
    phases += s.calls;
    dispatches += s.dispatches;
    sum += s.total_us;
    attention = attention || s.name.find("attention_split") != std::string::npos;
    matmul = matmul || s.name.find("mat") != std::string::npos;
  }
  EXPECT_TRUE(attention);
  EXPECT_TRUE(matmul);
  // Each dispatch in one phase.
  EXPECT_EQ(dispatches, k * info.dispatches);
  EXPECT_EQ(p.dispatches, dispatches);
  EXPECT_NEAR(sum, p.dispatch_us, 1e-6 * sum + 1e-3);
  // A phase starts at each barrier of a step (the replayed step's count includes the one before its first
  // command) and at each command buffer's start; copies and position updates add no phase of their own
  // unless they need a barrier.
  EXPECT_GE(phases, k * (info.barriers - 1));
  EXPECT_LE(phases, k * info.barriers + p.command_buffers);
  // The phases partition each command buffer's interval, so they cover the busy time (their sum exceeds it
  // only where command buffers overlap on the GPU).
  EXPECT_GE(p.dispatch_us, 0.99 * p.busy_us - 1.0);
}

}  // namespace
}  // namespace fkv::test
