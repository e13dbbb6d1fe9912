// End to end with the fourier KV policy: SmolLM2's teacher-forced logits on Vulkan against the CPU backend
// through prefill chunks and decode steps, with a window, fit and refits small enough that the middle is
// compressed, fitted (at 8 tokens) and refitted (16, 32) within 64 tokens. Same tolerances as the full-cache
// parity test (max rel. error per position < 2e-3, argmax agreement >= 99%). The longer check (3K
// prompt, W = 256, 128 greedy steps) is `fkv-parity --kv fourier --window 256 --n-gen 128`, measured by
// hand (docs/VULKAN.md): too slow for lavapipe in CI.
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

}  // namespace
}  // namespace fkv::test
