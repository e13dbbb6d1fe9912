// The RMSNorm folded into the decode matvec after it (matvec_norm.comp, matvec_fused_norm.comp) and the
// residual add into the one before it (matvec_residual.comp): a layer's ops as the engine issues them give
// the outputs, the residual x and the normalized xb of the separate dispatches (FKV_VULKAN_FUSE=0) and of
// the CPU, for every weight type and layout the decode matvec takes, odd row counts, poisoned outputs,
// with and without subgroupAdd; the profile counts one dispatch per step where the fold applies (so a fold
// that silently stops happening fails) and shows that FKV_VULKAN_FUSE_NORM=0 keeps the norm apart.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "random_model_file.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

bool is_lavapipe(const Backend& be) {
  return be.device_name().find("llvmpipe") != std::string::npos;
}

// The GPU decode kernels (forced on lavapipe) with the given extra variables.
Backend& gpu_kernels(Backend* shared, std::vector<std::string> vars) {
  if (is_lavapipe(*shared)) vars.push_back("FKV_VULKAN_GPU_KERNELS=1");
  return vars.empty() ? *shared : EnvBackends::get(vars);
}

template <typename F>
VulkanProfile profiled(Backend& be, F&& ops) {
  EXPECT_TRUE(vulkan_set_profile(be, true));
  ops();
  const VulkanProfile p = vulkan_profile(be);
  vulkan_set_profile(be, false);
  return p;
}

bool ran(const VulkanProfile& p, const std::string& shader) {
  for (const auto& s : p.shaders)
    if (s.name == shader || s.name == shader + "_subgroup") return true;
  return false;
}

std::vector<float> read_back(Backend& be, const DeviceBuffer& b, size_t count) {
  std::vector<float> out(count);
  be.download(b, 0, out.data(), count * 4);
  return out;
}

struct Case {
  std::string name;
  GgmlType type;
  int64_t dim;
  bool upload_weight;
  bool folds;  // whether the decode matvec takes it
};
const Case kCases[] = {
    {"f16", GgmlType::F16, 4104, true, true},
    {"f16 dim % 8 != 0 (matmul.comp)", GgmlType::F16, 4100, true, false},
    {"q4_0x8", GgmlType::Q4_0, 4096, true, true},
    {"q4_0 gguf layout", GgmlType::Q4_0, 4096, false, true},
    {"q4_0 dim 4128 (not repacked)", GgmlType::Q4_0, 4128, true, true},
    {"q8_0", GgmlType::Q8_0, 2080, true, true},
    {"q4_k (matmul.comp)", GgmlType::Q4_K, 4096, true, false},
};

// The steps of a layer, each profiled on its own:
//   kNormQkv    rms_norm(x, n1) -> xb; q, k, v of xb (577, 33, 33 rows)
//   kResidual   o of att -> xb (dim rows); add(x, xb, x)
//   kNormFfn    rms_norm(x, n2) -> xb; gate, up of xb (577 rows); swiglu into gate
//   kResidual2  as kResidual
//   kNormLogits rms_norm(x, n3) -> xb; logits of xb (999 rows)
//   kAddNorm    add(x, y, x) (not after a matvec); rms_norm(x, n1) -> xb; q of xb
//   kIntoInput  rms_norm(x, n2) -> xb; o of xb -> x (writes the norm's input: must not fold)
enum Step { kNormQkv, kResidual, kNormFfn, kResidual2, kNormLogits, kAddNorm, kIntoInput, kSteps };
const char* const kStepNames[kSteps] = {"norm + q k v",        "o + residual add", "norm + gate up swiglu",
                                        "down + residual add", "norm + logits",    "add + norm + q",
                                        "norm + matvec into x"};
// Dispatches of each step where the fold applies; with FKV_VULKAN_FUSE_NORM=0; with fusion on for types the
// decode matvec does not take (only the add + norm fused); with FKV_VULKAN_FUSE=0.
const uint64_t kFolded[kSteps] = {1, 1, 1, 1, 1, 2, 2};
const uint64_t kNormApart[kSteps] = {2, 2, 2, 2, 2, 2, 2};
const uint64_t kNotTaken[kSteps] = {4, 2, 4, 2, 2, 2, 2};
const uint64_t kUnfused[kSteps] = {4, 2, 4, 2, 2, 3, 2};

struct Result {
  std::vector<std::vector<float>> values;  // per step: its outputs, then x and xb
  VulkanProfile profile[kSteps];
};

Result run_layer(Backend& be, const Case& c) {
  const int64_t d = c.dim;
  const float eps = 1e-5f;
  const int64_t rows[6] = {577, 33, 33, d, 577, 999};  // q k v o gate(up) logits
  BufferPtr wb[7];
  Weight w[7];
  for (int i = 0; i < 7; ++i) {
    const int64_t r = i == 6 ? 577 : rows[i];  // up: gate's rows
    const auto bytes = random_weight(c.type, r, d, uint32_t(80 + i));
    wb[i] = be.alloc(bytes.size(), "weight");
    w[i] = Weight{wb[i].get(), c.type, r, d};
    if (c.upload_weight) {
      be.upload_weight(w[i], bytes.data(), bytes.size());
    } else {
      be.upload(*wb[i], 0, bytes.data(), bytes.size());
    }
  }
  auto buffer = [&](const std::vector<float>& v) {
    BufferPtr b = be.alloc(v.size() * 4, "values");
    be.upload(*b, 0, v.data(), v.size() * 4);
    return b;
  };
  auto poisoned = [&](int64_t n) {
    BufferPtr b = be.alloc(size_t(n) * 4, "out");
    const std::vector<uint8_t> nan(size_t(n) * 4, 0xFF);
    be.upload(*b, 0, nan.data(), nan.size());
    return b;
  };
  BufferPtr x = buffer(random_floats(size_t(d), 11)), att = buffer(random_floats(size_t(d), 12)),
            y = buffer(random_floats(size_t(d), 13)), xb = poisoned(d);
  BufferPtr nw[3];
  for (int i = 0; i < 3; ++i) {
    std::vector<float> v = random_floats(size_t(d), uint32_t(20 + i), 0.3f);
    for (float& f : v) f += 1.0f;
    nw[i] = buffer(v);
  }
  BufferPtr q = poisoned(577), k = poisoned(33), v = poisoned(33), gate = poisoned(577), up = poisoned(577),
            logits = poisoned(999);
  const bool vulkan = be.name() == "vulkan";
  Result r;
  for (int s = 0; s < kSteps; ++s) {
    auto ops = [&] {
      switch (Step(s)) {
        case kNormQkv:
          be.rms_norm(*x, *nw[0], 1, int(d), eps, *xb);
          be.matmul(w[0], *xb, 1, *q);
          be.matmul(w[1], *xb, 1, *k);
          be.matmul(w[2], *xb, 1, *v);
          break;
        case kResidual:
        case kResidual2:
          be.matmul(w[3], *att, 1, *xb);
          be.add(*x, *xb, d, *x);
          break;
        case kNormFfn:
          be.rms_norm(*x, *nw[1], 1, int(d), eps, *xb);
          be.matmul(w[4], *xb, 1, *gate);
          be.matmul(w[6], *xb, 1, *up);
          be.swiglu(*gate, *up, 577, *gate);
          break;
        case kNormLogits:
          be.rms_norm(*x, *nw[2], 1, int(d), eps, *xb);
          be.matmul(w[5], *xb, 1, *logits);
          break;
        case kAddNorm:
          be.add(*x, *y, d, *x);
          be.rms_norm(*x, *nw[0], 1, int(d), eps, *xb);
          be.matmul(w[0], *xb, 1, *q);
          break;
        case kIntoInput:
          be.rms_norm(*x, *nw[1], 1, int(d), eps, *xb);
          be.matmul(w[3], *xb, 1, *x);
          break;
        default:
          break;
      }
    };
    if (vulkan) {
      r.profile[s] = profiled(be, ops);
    } else {
      ops();
    }
    std::vector<std::vector<float>> got;
    switch (Step(s)) {
      case kNormQkv:
        got = {read_back(be, *q, 577), read_back(be, *k, 33), read_back(be, *v, 33)};
        break;
      case kNormFfn:
        got = {read_back(be, *gate, 577), read_back(be, *up, 577)};
        break;
      case kNormLogits:
        got = {read_back(be, *logits, 999)};
        break;
      case kAddNorm:
        got = {read_back(be, *q, 577)};
        break;
      default:
        break;
    }
    got.push_back(read_back(be, *x, size_t(d)));
    got.push_back(read_back(be, *xb, size_t(d)));
    for (auto& g : got) r.values.push_back(std::move(g));
  }
  return r;
}

// Every value against the CPU (< 1e-4) and the unfused dispatches (< 1e-5: only the norm's scale is
// applied to the row sums instead of to each activation).
void expect_close(const Result& got, const Result& plain, const Result& cpu, const std::string& what) {
  ASSERT_EQ(got.values.size(), cpu.values.size()) << what;
  double worst_plain = 0, worst_cpu = 0;
  for (size_t i = 0; i < cpu.values.size(); ++i) {
    const double vp = max_rel_error(got.values[i], plain.values[i]),
                 vc = max_rel_error(got.values[i], cpu.values[i]);
    EXPECT_LT(vp, 1e-5) << what << ": value " << i;
    EXPECT_LT(vc, 1e-4) << what << ": value " << i;
    EXPECT_LT(max_rel_error(plain.values[i], cpu.values[i]), 1e-4) << what << ": value " << i << " (unfused)";
    worst_plain = std::max(worst_plain, vp);
    worst_cpu = std::max(worst_cpu, vc);
  }
  std::printf("[ norm fold ] %-44s vs unfused %.1e, vs cpu %.1e\n", what.c_str(), worst_plain, worst_cpu);
}

TEST_F(VulkanTest, NormFoldedIntoDecodeMatvecsMatchesUnfusedAndCpu) {
  for (const Case& c : kCases) {
    const Result ref = run_layer(*cpu, c);
    for (const char* subgroup : {"1", "0"}) {
      const std::string sg = std::string("FKV_VULKAN_SUBGROUP=") + subgroup;
      Backend& folded = gpu_kernels(vk, {sg});
      Backend& plain = gpu_kernels(vk, {sg, "FKV_VULKAN_FUSE=0"});
      const std::string what = c.name + ", subgroup " + subgroup;
      const Result f = run_layer(folded, c), p = run_layer(plain, c);
      expect_close(f, p, ref, what);
      for (int s = 0; s < kSteps; ++s) {
        EXPECT_EQ(f.profile[s].dispatches, c.folds ? kFolded[s] : kNotTaken[s])
            << what << ": " << kStepNames[s];
        EXPECT_EQ(p.profile[s].dispatches, kUnfused[s]) << what << ": " << kStepNames[s];
      }
      EXPECT_EQ(ran(f.profile[kNormQkv], "matvec_fused_norm"), c.folds) << what;
      EXPECT_EQ(ran(f.profile[kNormFfn], "matvec_fused_norm"), c.folds) << what;
      EXPECT_EQ(ran(f.profile[kNormLogits], "matvec_norm"), c.folds) << what;
      EXPECT_EQ(ran(f.profile[kResidual], "matvec_residual"), c.folds) << what;
      EXPECT_EQ(ran(f.profile[kResidual2], "matvec_residual"), c.folds) << what;
      EXPECT_EQ(ran(f.profile[kAddNorm], "add_rms_norm"), true) << what;  // the add follows no matvec
      EXPECT_FALSE(ran(f.profile[kIntoInput], "matvec_norm")) << what;
    }
  }
}

// FKV_VULKAN_FUSE_NORM=0 (for timing the fold): the norm (and the add before it) its own dispatch, the
// matvecs of one x still one.
TEST_F(VulkanTest, NormFoldCanBeLeftOut) {
  Backend& be = gpu_kernels(vk, {"FKV_VULKAN_FUSE_NORM=0"});
  const Case& c = kCases[2];  // q4_0x8
  const Result ref = run_layer(*cpu, c), f = run_layer(be, c);
  for (size_t i = 0; i < ref.values.size(); ++i)
    EXPECT_LT(max_rel_error(f.values[i], ref.values[i]), 1e-4) << i;
  for (int s = 0; s < kSteps; ++s) EXPECT_EQ(f.profile[s].dispatches, kNormApart[s]) << kStepNames[s];
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_FALSE(ran(f.profile[s], "matvec_norm") || ran(f.profile[s], "matvec_fused_norm") ||
                 ran(f.profile[s], "matvec_residual"))
        << kStepNames[s];
  }
  EXPECT_TRUE(ran(f.profile[kNormQkv], "matvec_fused"));
}

// Whole decode steps of a random model: with the folds, FKV_VULKAN_FUSE_NORM=0 and FKV_VULKAN_FUSE=0 the
// logits agree, and agree with the CPU; the recorded step (replayed) has per layer
// q k v + norm | rope q, k + store k, v | split | merge | o + add | gate up + SwiGLU + norm | down + add,
// then the copy of the last row | logits + output norm.
TEST_F(VulkanTest, NormFoldedDecodeStepsMatchUnfusedAndCpu) {
  Backend& folded = gpu_kernels(vk, {});
  Backend& apart = gpu_kernels(vk, {"FKV_VULKAN_FUSE_NORM=0"});
  Backend& plain = gpu_kernels(vk, {"FKV_VULKAN_FUSE=0"});
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0}) {
    const std::string what = type_name(uint32_t(type));
    RandomModelFile m(folded, "small", type);
    const auto apart_model = LlamaModel::load(*m.file, apart);
    const auto plain_model = LlamaModel::load(*m.file, plain);
    const auto cpu_model = LlamaModel::load(*m.file, *cpu);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 16; ++i) tokens.push_back(int32_t((i * 37 + 11) % 500));
    SessionOptions so;
    const uint64_t replays = vulkan_replay_info(folded).replays;
    const auto f = logits_per_position(*m.model, so, tokens, 4);
    const VulkanReplayInfo info = vulkan_replay_info(folded);
    const auto a = logits_per_position(*apart_model, so, tokens, 4);
    const VulkanReplayInfo apart_info = vulkan_replay_info(apart);
    const auto p = logits_per_position(*plain_model, so, tokens, 4);
    const auto c = logits_per_position(*cpu_model, so, tokens, 4);
    const size_t vocab = size_t(m.model->hparams().vocab);
    // The folded norm scales row sums instead of activations; two layers and the logits amplify that
    // rounding (lavapipe: 8e-6 for Q4_0), well within what the CPU comparison allows.
    EXPECT_LT(max_rel_error(f, p), 5e-5) << what;
    EXPECT_LT(max_rel_error(a, p), 1e-5) << what;
    std::printf(
        "[ norm fold ] %s decode: folded vs unfused %.1e, norm apart vs unfused %.1e; vs cpu: folded "
        "%.1e, unfused %.1e\n",
        what.c_str(), max_rel_error(f, p), max_rel_error(a, p), max_rel_error(f, c), max_rel_error(p, c));
    expect_logits_agree(f, c, tokens.size(), vocab, what + " folded vs cpu");
    const uint32_t layers = uint32_t(m.model->hparams().n_layers);
    EXPECT_GT(info.replays, replays) << what << ": no decode step was replayed";
    // embed, 7 per layer, logits.
    EXPECT_EQ(info.dispatches, 1 + 7 * layers + 1) << what;
    // The step's input, 7 per layer, copy | logits.
    EXPECT_EQ(info.barriers, 1 + 7 * layers + 2) << what;
    // Norm apart: embed, the first norm, 9 per layer, output norm, logits.
    EXPECT_EQ(apart_info.dispatches, 1 + 1 + 9 * layers + 2) << what;
  }
}

}  // namespace
}  // namespace fkv::test
