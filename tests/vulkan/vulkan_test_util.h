// Shared helpers for the Vulkan tests: a fixture holding a Vulkan and a CPU backend, validation layers on
// (FKV_VULKAN_VALIDATE=1 unless the environment says otherwise) with zero messages expected per test,
// random data, and error metrics.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/vulkan/vulkan_backend.h"
#include "engine/session.h"
#include "model/ggml_type.h"
#include "model/llama_model.h"
#include "model/quant.h"
#include "test_paths.h"

namespace fkv::test {

// Before main: validation on for the whole test program unless the caller set the variable (the GPU run,
// which has no validation layer installed, sets it to 0).
inline const bool kValidationRequested = [] {
  setenv("FKV_VULKAN_VALIDATE", "1", 0);
  return true;
}();

// One Vulkan backend per test program, destroyed (and its destruction validated) after the last test:
// creating a device per test is slow, and NVIDIA's driver refused new instances after a few dozen.
class SharedVulkanBackend : public ::testing::Environment {
 public:
  static Backend& get() {
    if (!backend_) backend_ = create_vulkan_backend(-1);
    return *backend_;
  }
  void TearDown() override {
    const uint64_t before = vulkan_validation_message_count();
    backend_.reset();
    EXPECT_EQ(vulkan_validation_message_count(), before) << "Vulkan validation messages at destruction";
  }

 private:
  static inline std::unique_ptr<Backend> backend_;
};
inline ::testing::Environment* const kSharedVulkanBackend =
    ::testing::AddGlobalTestEnvironment(new SharedVulkanBackend);

// Vulkan backends made with some environment variables set, one per setting for the whole program (NVIDIA's
// driver refuses new instances after a few dozen), destroyed and validated after the last test.
class EnvBackends : public ::testing::Environment {
 public:
  // vars: "NAME=VALUE" pairs set while the backend is created; afterwards each variable is as it was (the
  // run's own settings, e.g. FKV_VULKAN_GPU_KERNELS=1 for the whole program, stay for later tests).
  static Backend& get(const std::vector<std::string>& vars) {
    std::string key;
    for (const auto& v : vars) key += v + ";";
    auto& b = backends_[key];
    if (!b) {
      std::vector<std::pair<std::string, std::optional<std::string>>> saved;
      for (const auto& v : vars) {
        const std::string name = v.substr(0, v.find('='));
        const char* old = std::getenv(name.c_str());
        saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
        setenv(name.c_str(), v.substr(v.find('=') + 1).c_str(), 1);
      }
      b = create_vulkan_backend(-1);
      for (const auto& [name, old] : saved)
        if (old)
          setenv(name.c_str(), old->c_str(), 1);
        else
          unsetenv(name.c_str());
    }
    return *b;
  }
  void TearDown() override {
    const uint64_t before = vulkan_validation_message_count();
    backends_.clear();
    EXPECT_EQ(vulkan_validation_message_count(), before) << "Vulkan validation messages at destruction";
  }

 private:
  static inline std::map<std::string, std::unique_ptr<Backend>> backends_;
};
inline ::testing::Environment* const kEnvBackends = ::testing::AddGlobalTestEnvironment(new EnvBackends);

class VulkanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    messages_before_ = vulkan_validation_message_count();
    vk = &SharedVulkanBackend::get();
    cpu = create_cpu_backend(2);
  }
  void TearDown() override {
    if (vk) vk->synchronize();
    EXPECT_EQ(vulkan_validation_message_count(), messages_before_) << "Vulkan validation layer messages";
  }

  // A buffer on each backend holding the same floats (on `gpu`, the shared Vulkan backend by default).
  std::pair<BufferPtr, BufferPtr> both(const std::vector<float>& v, const char* what, Backend* gpu = nullptr) {
    return both_bytes(v.data(), v.size() * 4, what, gpu);
  }
  std::pair<BufferPtr, BufferPtr> both_bytes(const void* p, size_t bytes, const char* what, Backend* gpu = nullptr) {
    Backend& g = gpu ? *gpu : *vk;
    BufferPtr a = g.alloc(bytes, what), b = cpu->alloc(bytes, what);
    g.upload(*a, 0, p, bytes);
    cpu->upload(*b, 0, p, bytes);
    return {a, b};
  }
  // A Vulkan buffer filled with NaN, so that elements an op fails to write show up in the comparison.
  BufferPtr poisoned(size_t bytes, const char* what, Backend* gpu = nullptr) {
    Backend& g = gpu ? *gpu : *vk;
    BufferPtr b = g.alloc(bytes, what);
    std::vector<uint8_t> nan(bytes, 0xFF);
    g.upload(*b, 0, nan.data(), bytes);
    return b;
  }
  std::vector<float> read(Backend& be, const DeviceBuffer& b, size_t count) {
    std::vector<float> out(count);
    be.download(b, 0, out.data(), count * 4);
    return out;
  }

  Backend* vk = nullptr;
  std::unique_ptr<Backend> cpu;
  uint64_t messages_before_ = 0;
};

// Whether a backend runs on Mesa's CPU driver (lavapipe / llvmpipe): tests pick shapes and paths for it.
inline bool is_lavapipe(const Backend& be) {
  return be.device_name().find("llvmpipe") != std::string::npos;
}

// Whether a backend runs the CPU-device kernels (lavapipe's own configuration):
// VulkanContext::cpu_kernels()'s rule, lavapipe unless FKV_VULKAN_GPU_KERNELS is set, told from the outside
// by the device name.
inline bool runs_cpu_kernels(const Backend& be) {
  return is_lavapipe(be) && !std::getenv("FKV_VULKAN_GPU_KERNELS");
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A random weight matrix in `type`, as GGUF bytes.
inline std::vector<uint8_t> random_weight(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const std::vector<float> v = random_floats(size_t(rows * cols), seed, 0.5f);
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> out(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, v.data() + r * cols, out.data() + rb * r, cols);
  return out;
}

// Random Q4_0 bytes (GGUF layout) with small positive scales (2^-7 .. 2^-6), for weights too large to
// quantize from floats in a test's time (e.g. larger than one 128 MiB storage binding on lavapipe).
inline std::vector<uint8_t> random_q4_0_bytes(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<uint8_t> bytes(row_bytes(GgmlType::Q4_0, cols) * size_t(rows));
  std::mt19937 rng(seed);
  for (size_t i = 0; i < bytes.size(); i += 4) {
    const uint32_t r = rng();
    std::memcpy(&bytes[i], &r, 4);
  }
  for (size_t b = 0; b < bytes.size(); b += 18) {
    const uint16_t d = uint16_t(0x2000 | (rng() & 0x0FFF));
    std::memcpy(&bytes[b], &d, 2);
  }
  return bytes;
}

// max |a - b| / max |b|; infinite when a holds a NaN (an unwritten, poisoned element) or sizes differ.
inline double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) && std::isfinite(b[i])) return INFINITY;
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    ref = std::max(ref, double(std::fabs(b[i])));
  }
  return ref > 0 ? diff / ref : diff;
}

// Teacher-forced logits of two backends ([positions, vocab] each) against the end-to-end bar: worst
// per-position relative error < 2e-3 and the same argmax at >= 99% of positions. `label` names the run in
// the printed summary.
inline void expect_logits_agree(const std::vector<float>& a, const std::vector<float>& b, size_t positions,
                                size_t vocab, const std::string& label) {
  ASSERT_EQ(a.size(), positions * vocab);
  ASSERT_EQ(b.size(), a.size());
  double worst = 0;
  size_t same = 0;
  for (size_t p = 0; p < positions; ++p) {
    const std::vector<float> ra(a.begin() + p * vocab, a.begin() + (p + 1) * vocab);
    const std::vector<float> rb(b.begin() + p * vocab, b.begin() + (p + 1) * vocab);
    worst = std::max(worst, max_rel_error(ra, rb));
    same += std::max_element(ra.begin(), ra.end()) - ra.begin() ==
            std::max_element(rb.begin(), rb.end()) - rb.begin();
  }
  std::printf("[ parity ] %s: %zu positions, worst rel error %.2e, same argmax %zu\n", label.c_str(),
              positions, worst, same);
  EXPECT_LT(worst, 2e-3);
  EXPECT_GE(double(same), 0.99 * double(positions));
}

// The first `count` token ids of the golden SmolLM2 fixture's cases, concatenated (a real text the
// end-to-end tests run through both backends).
// Logits of every position of a session with options `so` (ctx set to the token count): the first `prefill`
// tokens in one eval, the rest one token at a time.
inline std::vector<float> logits_per_position(const LlamaModel& model, SessionOptions so,
                                              const std::vector<int32_t>& tokens, size_t prefill) {
  so.ctx = int(tokens.size());
  Session session(model, so);
  std::vector<float> all = session.eval(std::span(tokens.data(), prefill), true);
  for (size_t i = prefill; i < tokens.size(); ++i) {
    const auto& last = session.eval(std::span(tokens.data() + i, 1));
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

inline std::vector<int32_t> golden_smollm2_tokens(size_t count) {
  std::ifstream in(fixture("golden_smollm2.json"));
  const auto j = nlohmann::json::parse(in);
  std::vector<int32_t> tokens;
  for (const auto& c : j.at("cases"))
    for (int32_t t : c.at("tokens").get<std::vector<int32_t>>()) tokens.push_back(t);
  tokens.resize(std::min(tokens.size(), count));
  return tokens;
}

}  // namespace fkv::test
