// End to end with the fourier KV policy: SmolLM2's teacher-forced logits on Vulkan against the CPU backend
// through prefill chunks and decode steps, with a window, fit and refits small enough that the middle is
// compressed, fitted (at 8 tokens) and refitted (16, 32) within 64 tokens. Same tolerances as the full-cache
// parity test (max rel. error per position < 2e-3, argmax agreement >= 99%). The longer check (3K
// prompt, W = 256, 128 greedy steps) is `fkv-parity --kv fourier --window 256 --n-gen 128`, measured by
// hand (docs/VULKAN.md): too slow for lavapipe in CI.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "model/default_model.h"
#include "model/llama_model.h"
#include "test_paths.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

std::vector<float> run_fourier(const LlamaModel& model, const std::vector<int32_t>& tokens, size_t prefill) {
  SessionOptions so;
  so.max_batch = 16;
  so.kv.policy = "fourier";
  so.kv.sink = 4;
  so.kv.window = 16;
  so.kv.fourier_n = 32;
  so.kv.fourier_fit_tokens = 8;
  return logits_per_position(model, so, tokens, prefill);
}

TEST_F(VulkanTest, SmolLM2FourierLogitsMatchCpu) {
  const std::string path = default_model_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tools/fetch-default-model.sh";
  const std::vector<int32_t> tokens = golden_smollm2_tokens(64);
  ASSERT_GE(tokens.size(), 60u);
  auto file = GgufFile::open(path);
  auto model_vk = LlamaModel::load(*file, *vk);
  auto model_cpu = LlamaModel::load(*file, *cpu);
  const size_t vocab = size_t(model_vk->hparams().vocab);
  const std::vector<float> a = run_fourier(*model_vk, tokens, 40), b = run_fourier(*model_cpu, tokens, 40);
  expect_logits_agree(a, b, tokens.size(), vocab, "fourier kv");
}

// The decode steps' RoPE of q and K folded into the q/k/v matvec before the split-cache append
// (matvec_fused.comp ROPE_STORE 2): bit-identical logits to the separate RoPE dispatches, and no RoPE
// dispatch left in the decode steps.
TEST_F(VulkanTest, SmolLM2FourierRopeFoldIsBitIdentical) {
  const std::string path = default_model_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tools/fetch-default-model.sh";
  const std::vector<int32_t> tokens = golden_smollm2_tokens(28);
  ASSERT_GE(tokens.size(), 28u);
  // On lavapipe decode takes matmul.comp unless the GPU kernels are asked for (the fold needs the fused
  // q/k/v matvec).
  // The norm fold is off on both sides: it changes the rounding of the normed rows (its own tests compare
  // with a tolerance), so the bit-identity below would not tell the RoPE fold's effect.
  const bool lavapipe = is_lavapipe(*vk);
  Backend& be = lavapipe ? EnvBackends::get({"FKV_VULKAN_GPU_KERNELS=1", "FKV_VULKAN_NORM_FOLD=0"})
                         : EnvBackends::get({"FKV_VULKAN_NORM_FOLD=0"});
  auto file = GgufFile::open(path);
  auto model = LlamaModel::load(*file, be);
  // Prefill 24 tokens (4 middle rows, not yet fitted), then decode 4 steps (the fit at 8 rows among them),
  // profiled.
  auto run = [&](bool fused, uint64_t* decode_ropes) {
    vulkan_set_fusion(be, fused);
    SessionOptions so;
    so.max_batch = 16;
    so.ctx = int(tokens.size());
    so.kv.policy = "fourier";
    so.kv.sink = 4;
    so.kv.window = 16;
    so.kv.fourier_n = 32;
    so.kv.fourier_fit_tokens = 8;
    Session session(*model, so);
    session.eval(std::span(tokens.data(), 24));
    EXPECT_TRUE(vulkan_set_profile(be, true)) << "no timestamp queries: cannot count dispatches";
    std::vector<float> all;
    for (size_t i = 24; i < tokens.size(); ++i) {
      const auto& l = session.eval(std::span(tokens.data() + i, 1));
      all.insert(all.end(), l.begin(), l.end());
    }
    const VulkanProfile prof = vulkan_profile(be);
    vulkan_set_profile(be, false);
    *decode_ropes = 0;
    for (const VulkanShaderTime& t : prof.shaders)
      if (t.name == "rope") *decode_ropes += t.calls;
    return all;
  };
  uint64_t ropes_apart = 0, ropes_fused = 0;
  const std::vector<float> apart = run(false, &ropes_apart);
  const std::vector<float> fused = run(true, &ropes_fused);
  ASSERT_EQ(fused.size(), apart.size());
  EXPECT_EQ(0, std::memcmp(fused.data(), apart.data(), fused.size() * sizeof(float)))
      << "the folded RoPE changed the logits";
  EXPECT_EQ(ropes_apart, 2 * 4 * uint64_t(model->hparams().n_layers));  // q and K, 4 steps
  EXPECT_EQ(ropes_fused, 0u);
}

}  // namespace
}  // namespace fkv::test
