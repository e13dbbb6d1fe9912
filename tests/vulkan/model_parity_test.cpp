// End to end: teacher-forced logits of real models on the Vulkan backend against the CPU backend, through
// a prefill chunk and then single-token decode steps. Tolerances (issue 3): max relative error per
// position < 2e-3 (max |vk - cpu| / max |cpu|) and the same argmax at >= 99% of positions.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "model/llama2c_convert.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "test_paths.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

// Logits of every position with the default session options (full cache).
std::vector<float> run(const LlamaModel& model, const std::vector<int32_t>& tokens, size_t prefill) {
  return logits_per_position(model, SessionOptions{}, tokens, prefill);
}

void compare(const std::string& path, const std::vector<int32_t>& tokens, size_t prefill, Backend& vk,
             Backend& cpu) {
  auto file = GgufFile::open(path);
  auto model_vk = LlamaModel::load(*file, vk);
  auto model_cpu = LlamaModel::load(*file, cpu);
  const size_t vocab = size_t(model_vk->hparams().vocab);
  const std::vector<float> a = run(*model_vk, tokens, prefill), b = run(*model_cpu, tokens, prefill);
  expect_logits_agree(a, b, tokens.size(), vocab, path);
}

TEST_F(VulkanTest, SmolLM2LogitsMatchCpu) {
  const std::string path = default_model_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tools/fetch-default-model.sh";
  const std::vector<int32_t> tokens = golden_smollm2_tokens(64);
  ASSERT_GE(tokens.size(), 16u);
  compare(path, tokens, tokens.size() - 8, *vk, *cpu);
}

TEST_F(VulkanTest, Stories260kLogitsMatchCpu) {
  // Odd shapes: head_dim 8, GQA 2:1, dims that are not multiples of any workgroup.
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("fkv_vulkan_stories260k_" + std::to_string(getpid()) + ".gguf"))
                              .string();
  convert_llama2c(shared_dir() + "/models/stories260K.bin", out);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(int32_t(1 + (i * 37) % 500));
  compare(out, tokens, 30, *vk, *cpu);
  std::filesystem::remove(out);
}

TEST_F(VulkanTest, RandomQ4_0LogitsMatchCpu) {
  // Every matrix and the embedding table Q4_0 with rows of 256 or 512 values: repacked by the Vulkan
  // backend's upload_weight (docs/VULKAN.md), read in the GGUF layout by the CPU.
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("fkv_vulkan_random_q4_0_" + std::to_string(getpid()) + ".gguf"))
                              .string();
  RandomModelOptions o;
  o.shape = "small";
  o.type = GgmlType::Q4_0;
  o.threads = 2;
  make_random_model(o, out);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(int32_t(1 + (i * 37) % 500));
  compare(out, tokens, 30, *vk, *cpu);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace fkv::test
