// The decode replay (src/backend/vulkan/vulkan_decode_replay.h): sessions of a small random model give
// bit-identical logits with replay on and off, through steps that change (a prefill chunk, another
// session's buffers, RoPE table rows appended and the table reallocated inside a step, a freed session's
// buffers), so that the fallback to eager execution runs too; the recorded step has a barrier only where a
// command reads or overwrites what an earlier one wrote.
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/session.h"
#include "gguf/gguf_reader.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "random_model_file.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

class ReplayTest : public VulkanTest {
 protected:
  void TearDown() override {
    vulkan_set_replay(*vk, true);
    VulkanTest::TearDown();
  }
};


// Logits of every eval of a fixed script: decode steps, a prefill chunk in the middle, steps that alternate
// between two sessions, a synthetic fill and decode steps across position 1024 (the RoPE table, fresh at the
// start, gets rows and a new buffer inside a step), then a new session in place of a freed one (buffers
// whose handles may be reused).
std::vector<std::vector<float>> run_script(Backend& vk, const LlamaModel& model) {
  vulkan_drop_scratch(vk);
  SessionOptions so;
  so.ctx = 1100;
  so.max_batch = 16;
  auto a = std::make_unique<Session>(model, so);
  auto b = std::make_unique<Session>(model, so);
  std::vector<std::vector<float>> out;
  int i = 0;
  auto step = [&](Session& s) {
    const int32_t t = int32_t((i * 37 + 11) % 500);
    out.push_back(s.eval(std::span(&t, 1)));
  };
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 33, 7, 400};
  out.push_back(a->eval(prompt));
  for (; i < 12; ++i) {
    step(*a);
    if (i == 0) vk.synchronize();  // an empty step before the capture
  }
  const std::vector<int32_t> chunk = {3, 4, 5};  // a multi-token step: eager, the replay survives it
  out.push_back(a->eval(chunk));
  for (; i < 20; ++i) {
    step(*a);
    vk.synchronize();  // an empty step between two repeated ones
  }
  out.push_back(b->eval(prompt));
  for (; i < 30; ++i) {  // b's steps match nothing: eager
    step(*a);
    step(*b);
  }
  for (; i < 36; ++i) step(*a);
  a->fill_synthetic(1018 - a->n_past(), 7);
  for (; i < 50; ++i) step(*a);
  b.reset();
  a.reset();
  Session c(model, so);
  out.push_back(c.eval(prompt));
  for (; i < 60; ++i) step(c);
  return out;
}

void expect_bit_identical(Backend& vk, const LlamaModel& model) {
  const uint64_t before = vulkan_replay_info(vk).replays;
  vulkan_set_replay(vk, true);
  const auto replayed = run_script(vk, model);
  const uint64_t replays = vulkan_replay_info(vk).replays - before;
  vulkan_set_replay(vk, false);
  const auto eager = run_script(vk, model);
  ASSERT_EQ(eager.size(), replayed.size());
  for (size_t s = 0; s < eager.size(); ++s) {
    ASSERT_EQ(eager[s].size(), replayed[s].size());
    ASSERT_EQ(std::memcmp(eager[s].data(), replayed[s].data(), eager[s].size() * 4), 0)
        << "eval " << s << " differs between eager and replayed execution";
  }
  // Of 70 single-token steps, the first two, b's 10, those around the RoPE table's move and the new
  // session's first two are not replays.
  EXPECT_GE(replays, 40u) << "decode steps were not replayed";
  std::printf("[ replay ] %zu evals bit-identical, %llu replayed\n", eager.size(),
              static_cast<unsigned long long>(replays));
}

TEST_F(ReplayTest, ReplayedDecodeIsBitIdenticalToEagerF16) {
  RandomModelFile m(*vk, "small", GgmlType::F16);
  expect_bit_identical(*vk, *m.model);
}

TEST_F(ReplayTest, ReplayedDecodeIsBitIdenticalToEagerQ4_0) {
  RandomModelFile m(*vk, "small", GgmlType::Q4_0);
  expect_bit_identical(*vk, *m.model);
}

// The GPU's decode kernels (on lavapipe, which otherwise runs its own), whose decode matvecs of one input
// are fused (q k v; gate up + swiglu): replay on and off bit-identical.
TEST_F(ReplayTest, ReplayedFusedDecodeIsBitIdenticalToEagerQ4_0) {
  Backend& be = !is_lavapipe(*vk) ? *vk : EnvBackends::get({"FKV_VULKAN_GPU_KERNELS=1"});
  RandomModelFile m(be, "small", GgmlType::Q4_0);
  expect_bit_identical(be, *m.model);
  vulkan_set_replay(be, true);
}

// A small fourier cache (S 4, W 16, N 16, fitted after 32 middle rows: at position 52) for the tests below.
void use_small_fourier_cache(SessionOptions& so) {
  so.kv.policy = "fourier";
  so.kv.sink = 4;
  so.kv.window = 16;
  so.kv.fourier_n = 16;
  so.kv.fourier_fit_tokens = 32;
}

// A fourier (split) KV cache's decode steps replay once the window is full and the middle fitted: the split
// shaders take positions from the position register (window extents, the middle's length, the append's
// rows). Logits bit-identical with replay on and off through the window filling, the middle's fit and a
// refit (eager steps), and most steady steps replayed.
TEST_F(ReplayTest, ReplayedFourierDecodeIsBitIdenticalToEager) {
  RandomModelFile m(*vk, "small", GgmlType::Q4_0);
  auto run = [&](bool replay) {
    vulkan_drop_scratch(*vk);
    vulkan_set_replay(*vk, replay);
    SessionOptions so;
    so.ctx = 400;
    so.max_batch = 16;
    use_small_fourier_cache(so);
    Session s(*m.model, so);
    std::vector<std::vector<float>> out;
    const std::vector<int32_t> prompt = {1, 5, 9, 200, 33, 7, 400};
    out.push_back(s.eval(prompt));
    for (int i = 0; i < 100; ++i) {  // positions 7 .. 106: middle fitted at 52, refitted at 84
      const int32_t t = int32_t((i * 37 + 11) % 500);
      out.push_back(s.eval(std::span(&t, 1)));
    }
    return out;
  };
  const uint64_t before = vulkan_replay_info(*vk).replays;
  const auto replayed = run(true);
  const uint64_t replays = vulkan_replay_info(*vk).replays - before;
  const auto eager = run(false);
  ASSERT_EQ(eager.size(), replayed.size());
  for (size_t i = 0; i < eager.size(); ++i)
    ASSERT_EQ(std::memcmp(eager[i].data(), replayed[i].data(), eager[i].size() * 4), 0)
        << "eval " << i << " differs between eager and replayed execution";
  // 54 steady steps after the fit (positions 53 ..), less the refit's and a few around it.
  EXPECT_GE(replays, 40u) << "fourier decode steps were not replayed";
  std::printf("[ replay ] fourier: %zu evals bit-identical, %llu replayed\n", eager.size(),
              static_cast<unsigned long long>(replays));
}

TEST_F(ReplayTest, RecordedStepHasBarriersOnlyWhereDataFlows) {
  RandomModelFile m(*vk, "small", GgmlType::F16);
  vulkan_set_replay(*vk, true);
  SessionOptions so;
  so.ctx = 64;
  Session s(*m.model, so);
  const std::vector<int32_t> prompt = {1, 2, 3};
  s.eval(prompt);
  for (int32_t t = 10; t < 14; ++t) s.eval(std::span(&t, 1));
  const VulkanReplayInfo info = vulkan_replay_info(*vk);
  const int layers = m.model->hparams().n_layers;
  // A GPU's decode matvec runs q k v (with the RoPEs and the K/V store folded in) as one dispatch and
  // gate up + swiglu as one (matvec_fusion_test.cpp counts them on lavapipe too); lavapipe's own matmul
  // runs each alone (also when the tests force the GPU kernels on lavapipe).
  const bool fused_matvecs = !runs_cpu_kernels(*vk);
  // embed; per layer norm (the first layer's only), q k v, rope q + rope k + store k and v (fused),
  // attention split with its merge, wo, add + norm (fused), gate up, swiglu, down, add + the next layer's
  // norm (fused; the last layer's add alone); output norm, logits.
  // The norm fold (GPUs) makes wo | add + norm and down | add + norm one dispatch each, but the last down.
  const int folded = vulkan_norm_fold(*vk) ? 2 * layers - 1 : 0;
  EXPECT_EQ(info.dispatches, uint32_t(1 + 1 + (fused_matvecs ? 7 : 12) * layers + 2 - folded));
  // One before the step (its input), then one per dependent group: the first layer's norm, then per layer
  // q k v | rope q, k + store k, v (with the position update) | split and merge | wo | add + norm |
  // gate up | swiglu | down | add + norm (the last: add), then copy of the last row | output norm | logits.
  EXPECT_EQ(info.barriers, uint32_t(1 + 1 + (fused_matvecs ? 7 : 9) * layers + 3 - folded));
  EXPECT_GE(info.replays, 2u);
}

// Host time of a decode step, eager and replayed: the calling thread's CPU time per step (recording, or
// matching and submitting, plus the logits' readback) and the wall time. Off by default (DISABLED_): run with
// --gtest_also_run_disabled_tests; prints lines starting with BENCH.
// FKV_BENCH_KV=fourier: use_small_fourier_cache(), warmed up past the middle's fit.
TEST_F(ReplayTest, DISABLED_BenchReplayHostTime) {
  RandomModelFile m(*vk, "small", GgmlType::F16);
  SessionOptions so;
  so.ctx = 512;
  const bool fourier = std::getenv("FKV_BENCH_KV") && std::string(std::getenv("FKV_BENCH_KV")) == "fourier";
  if (fourier) use_small_fourier_cache(so);
  for (bool replay : {false, true, false, true}) {
    vulkan_set_replay(*vk, replay);
    Session s(*m.model, so);
    const std::vector<int32_t> prompt = {1, 2, 3};
    s.eval(prompt);
    int32_t t = 5;
    // Warm up (the replay records here): past the fourier middle's fit at position 52.
    for (int i = 0; i < (fourier ? 60 : 4); ++i) s.eval(std::span(&t, 1));
    const int steps = 200;
    auto thread_seconds = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
    };
    const double cpu0 = thread_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) s.eval(std::span(&t, 1));
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = thread_seconds() - cpu0;
    const VulkanReplayInfo info = vulkan_replay_info(*vk);
    std::printf(
        "BENCH decode step, replay %-3s: host thread %7.1f us/step, wall %7.1f us/step (%u dispatches, "
        "%u barriers)\n",
        replay ? "on" : "off", cpu / steps * 1e6, wall / steps * 1e6, info.dispatches, info.barriers);
  }
}

}  // namespace
}  // namespace fkv::test
