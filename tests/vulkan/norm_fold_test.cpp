// The norm fold (vulkan_backend.cpp fold_norm): a decode matvec, the residual add of its product and the
// RMSNorm of the sum as one dispatch (matvec_add_norm.comp), the norm's scale applied by the fused matvecs
// that read it, and by norm_scale.comp before any other reader (a download, a copy, an element-wise op).
// Checked against the CPU for each weight type the decode matvec takes, with and without subgroupAdd,
// with rows of small values (the fine fixed-point total), ordinary ones and large ones (the coarse total),
// and outputs poisoned with NaN; the dispatches are counted, so a fold that silently stops happening fails.
#include <cstring>
#include <string>
#include <vector>

#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

// The backends that run the GPU's decode matvec: on lavapipe with FKV_VULKAN_GPU_KERNELS, with and without
// subgroupAdd, and with the fold turned off (the matvec, add_rms_norm.comp and plain readers).
std::vector<std::pair<std::string, Backend*>> gpu_kernel_backends(Backend* shared) {
  std::vector<std::pair<std::string, Backend*>> out;
  for (const char* setting : {"FKV_VULKAN_SUBGROUP=1", "FKV_VULKAN_SUBGROUP=0", "FKV_VULKAN_NORM_FOLD=0"}) {
    std::vector<std::string> vars = {setting};
    if (is_lavapipe(*shared)) vars.push_back("FKV_VULKAN_GPU_KERNELS=1");
    out.emplace_back(setting, &EnvBackends::get(vars));
  }
  return out;
}

std::vector<float> read_back(Backend& be, const DeviceBuffer& b, size_t count) {
  std::vector<float> out(count);
  be.download(b, 0, out.data(), count * 4);
  return out;
}

BufferPtr upload_floats(Backend& be, const std::vector<float>& v, const char* what) {
  BufferPtr b = be.alloc(v.size() * 4, what);
  be.upload(*b, 0, v.data(), v.size() * 4);
  return b;
}

// What a layer's "o, add, ffn norm, gate/up" leaves, and what other readers of the norm's output see.
struct Folded {
  std::vector<float> sum, gate, up, normed, copied, added;
  uint64_t dispatches = 0, add_norm = 0, norm_scale = 0, add_rms_norm = 0;
};

// W_o's rows of 512 are repacked by upload_weight (Q4_0x8); gate's and up's of 288 are not.
constexpr int64_t kDim = 288, kIn = 512, kFfn = 97;

// On `be`: xb = W_o a (xb poisoned first), x += xb, xb = rmsnorm(x) * w, then gate and up of xb with SwiGLU
// (the fused consumer), then a copy of xb, an add of xb to itself and a download of xb (other readers).
// `scale` sets the size of the residual x (and so of the sum of squares).
Folded run_layer(Backend& be, GgmlType type, float scale) {
  const auto wo_bytes = random_weight(type, kDim, kIn, 11);
  const auto wg_bytes = random_weight(type, kFfn, kDim, 12);
  const auto wu_bytes = random_weight(type, kFfn, kDim, 13);
  BufferPtr wo_b = be.alloc(wo_bytes.size(), "wo"), wg_b = be.alloc(wg_bytes.size(), "wg"),
            wu_b = be.alloc(wu_bytes.size(), "wu");
  const Weight wo{wo_b.get(), type, kDim, kIn}, wg{wg_b.get(), type, kFfn, kDim},
      wu{wu_b.get(), type, kFfn, kDim};
  be.upload_weight(wo, wo_bytes.data(), wo_bytes.size());
  be.upload_weight(wg, wg_bytes.data(), wg_bytes.size());
  be.upload_weight(wu, wu_bytes.data(), wu_bytes.size());
  BufferPtr a = upload_floats(be, random_floats(kIn, 21, scale), "a");
  BufferPtr x = upload_floats(be, random_floats(kDim, 22, scale), "x");
  BufferPtr nw = upload_floats(be, random_floats(kDim, 23), "norm weight");
  const std::vector<float> nan(kDim, std::nanf(""));
  const std::vector<float> nan_ffn(kFfn, std::nanf(""));
  BufferPtr xb = upload_floats(be, nan, "xb"), copy = upload_floats(be, nan, "copy"),
            twice = upload_floats(be, nan, "twice");
  BufferPtr gate = upload_floats(be, nan_ffn, "gate"), up = upload_floats(be, nan_ffn, "up");
  be.synchronize();

  auto ops = [&] {
    be.begin_step(0, 1);
    be.matmul(wo, *a, 1, *xb);
    be.add(*x, *xb, kDim, *x);
    be.rms_norm(*x, *nw, 1, kDim, 1e-5f, *xb);
    be.matmul(wg, *xb, 1, *gate);
    be.matmul(wu, *xb, 1, *up);
    be.swiglu(*gate, *up, kFfn, *gate);
    be.copy(*xb, 0, *copy, 0, kDim * 4);
    be.add(*xb, *xb, kDim, *twice);
  };
  Folded f;
  if (be.name() == "vulkan") {
    EXPECT_TRUE(vulkan_set_profile(be, true));
    ops();
    const VulkanProfile p = vulkan_profile(be);
    vulkan_set_profile(be, false);
    f.dispatches = p.dispatches;
    for (const VulkanShaderTime& s : p.shaders) {
      if (s.name.rfind("matvec_add_norm", 0) == 0) f.add_norm += s.calls;
      if (s.name == "norm_scale") f.norm_scale += s.calls;
      if (s.name.rfind("add_rms_norm", 0) == 0) f.add_rms_norm += s.calls;
    }
  } else {
    ops();
  }
  f.sum = read_back(be, *x, kDim);
  f.gate = read_back(be, *gate, kFfn);
  f.up = read_back(be, *up, kFfn);
  f.copied = read_back(be, *copy, kDim);
  f.added = read_back(be, *twice, kDim);
  f.normed = read_back(be, *xb, kDim);
  return f;
}

TEST_F(VulkanTest, NormFoldMatchesCpuForEveryReader) {
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0, GgmlType::Q8_0}) {
    // 1e-3: a sum of squares ~3e-4 (the fine total, the norm's eps comparable); 1: ordinary; 3e3: a sum
    // ~3e9, past the fine total's range (the coarse one).
    for (float scale : {1e-3f, 1.0f, 3e3f}) {
      const Folded ref = run_layer(*cpu, type, scale);
      for (const auto& [label, be] : gpu_kernel_backends(vk)) {
        const std::string what =
            std::string(type_name(uint32_t(type))) + ", x ~ " + std::to_string(scale) + ", " + label;
        const Folded f = run_layer(*be, type, scale);
        EXPECT_LT(max_rel_error(f.sum, ref.sum), 1e-4) << what << ": x + W_o a";
        EXPECT_LT(max_rel_error(f.gate, ref.gate), 1e-4) << what << ": silu(gate) * up of the norm";
        EXPECT_LT(max_rel_error(f.up, ref.up), 1e-4) << what << ": up of the norm";
        EXPECT_LT(max_rel_error(f.copied, ref.normed), 1e-4) << what << ": copy of the norm";
        EXPECT_LT(max_rel_error(f.added, ref.added), 1e-4) << what << ": norm + norm";
        EXPECT_LT(max_rel_error(f.normed, ref.normed), 1e-4) << what << ": the norm downloaded";
        std::printf("[ norm fold ] %-44s gate %.1e, norm %.1e\n", what.c_str(),
                    max_rel_error(f.gate, ref.gate), max_rel_error(f.normed, ref.normed));
        if (vulkan_norm_fold(*be)) {
          // o + add + norm one dispatch; gate/up + SwiGLU one (scaled); the copy's reader gets the scale
          // applied once, in place, which the add and the download then read.
          EXPECT_EQ(f.add_norm, 1u) << what;
          EXPECT_EQ(f.add_rms_norm, 0u) << what;
          EXPECT_EQ(f.norm_scale, 1u) << what;
          EXPECT_EQ(f.dispatches, 4u) << what;
        } else {
          EXPECT_EQ(f.add_norm, 0u) << what;
          EXPECT_EQ(f.add_rms_norm, 1u) << what;
        }
      }
    }
  }
}

// More folds than accumulator slots without a new step (256; tests and tools that issue ops without
// Backend::begin_step): the slots start over, each fold still normalises with its own sum.
TEST_F(VulkanTest, NormFoldSlotsStartOverPastTheLast) {
  Backend& be = *gpu_kernel_backends(vk)[0].second;
  constexpr int64_t dim = 64, rounds = 300;
  const auto w_bytes = random_weight(GgmlType::F16, dim, dim, 5);
  auto run = [&](Backend& b) {
    BufferPtr wb = b.alloc(w_bytes.size(), "w");
    const Weight w{wb.get(), GgmlType::F16, dim, dim};
    b.upload_weight(w, w_bytes.data(), w_bytes.size());
    BufferPtr x = upload_floats(b, random_floats(dim, 1), "x");
    BufferPtr nw = upload_floats(b, std::vector<float>(dim, 1.0f), "norm weight");
    BufferPtr xb = upload_floats(b, random_floats(dim, 2), "xb");
    BufferPtr q = upload_floats(b, random_floats(dim, 3), "q"),
              k = upload_floats(b, random_floats(dim, 4), "k");
    std::vector<float> trace;
    for (int64_t i = 0; i < rounds; ++i) {
      b.matmul(w, *xb, 1, *q);  // q = W xb (xb normed: the previous round's fold, scaled here)
      b.matmul(w, *xb, 1, *k);
      b.matmul(w, *q, 1, *xb);  // xb = W q, folded with the add and the norm below
      b.add(*x, *xb, dim, *x);
      b.rms_norm(*x, *nw, 1, dim, 1e-5f, *xb);
      if (i % 50 == 49) {
        const auto v = read_back(b, *k, dim);
        trace.insert(trace.end(), v.begin(), v.end());
      }
    }
    const auto v = read_back(b, *xb, dim);
    trace.insert(trace.end(), v.begin(), v.end());
    return trace;
  };
  const auto want = run(*cpu), got = run(be);
  EXPECT_LT(max_rel_error(got, want), 1e-4);
}

// The product written into the residual itself (x = W a; x = x + x; x = norm(x)): not the fold's shape (it
// reads the old residual after the product), so it runs unfolded and matches the CPU.
TEST_F(VulkanTest, NormFoldLeavesAProductIntoTheResidualApart) {
  Backend& be = *gpu_kernel_backends(vk)[0].second;
  constexpr int64_t dim = 64;
  const auto w_bytes = random_weight(GgmlType::F16, dim, dim, 6);
  auto run = [&](Backend& b) {
    BufferPtr wb = b.alloc(w_bytes.size(), "w");
    const Weight w{wb.get(), GgmlType::F16, dim, dim};
    b.upload_weight(w, w_bytes.data(), w_bytes.size());
    BufferPtr a = upload_floats(b, random_floats(dim, 1), "a"),
              x = upload_floats(b, random_floats(dim, 2), "x");
    BufferPtr nw = upload_floats(b, random_floats(dim, 3), "norm weight");
    b.matmul(w, *a, 1, *x);
    b.add(*x, *x, dim, *x);
    b.rms_norm(*x, *nw, 1, dim, 1e-5f, *x);
    return read_back(b, *x, dim);
  };
  EXPECT_LT(max_rel_error(run(be), run(*cpu)), 1e-4);
}

// A fold whose output is never read and whose buffers are freed (a session ended after a step): the next
// fold must not record the first one's fix-up on the freed buffer (validation would report it; the
// fixture expects no validation message).
TEST_F(VulkanTest, NormFoldOutputFreedUnreadIsForgotten) {
  Backend& be = *gpu_kernel_backends(vk)[0].second;
  constexpr int64_t dim = 64;
  const auto w_bytes = random_weight(GgmlType::F16, dim, dim, 5);
  BufferPtr wb = be.alloc(w_bytes.size(), "w");
  const Weight w{wb.get(), GgmlType::F16, dim, dim};
  be.upload_weight(w, w_bytes.data(), w_bytes.size());
  BufferPtr nw = upload_floats(be, std::vector<float>(dim, 1.0f), "norm weight");
  BufferPtr a = upload_floats(be, random_floats(dim, 1), "a");
  auto fold = [&](DeviceBuffer& x, DeviceBuffer& xb) {
    be.matmul(w, *a, 1, xb);
    be.add(x, xb, dim, x);
    be.rms_norm(x, *nw, 1, dim, 1e-5f, xb);
  };
  {
    BufferPtr x = upload_floats(be, random_floats(dim, 2), "x"),
              xb = upload_floats(be, random_floats(dim, 3), "xb");
    fold(*x, *xb);
    be.synchronize();
  }
  be.synchronize();  // the freed buffers are destroyed here
  BufferPtr x = upload_floats(be, random_floats(dim, 4), "x2"),
            xb = upload_floats(be, random_floats(dim, 5), "xb2");
  fold(*x, *xb);
  BufferPtr y = be.alloc(dim * 4, "y");
  be.matmul(w, *xb, 1, *y);
  const auto got = read_back(be, *y, dim);

  const auto cpu_be = create_cpu_backend(1);
  BufferPtr cw = cpu_be->alloc(w_bytes.size(), "w");
  const Weight cwt{cw.get(), GgmlType::F16, dim, dim};
  cpu_be->upload_weight(cwt, w_bytes.data(), w_bytes.size());
  BufferPtr cnw = upload_floats(*cpu_be, std::vector<float>(dim, 1.0f), "norm weight");
  BufferPtr ca = upload_floats(*cpu_be, random_floats(dim, 1), "a");
  BufferPtr cx = upload_floats(*cpu_be, random_floats(dim, 4), "x2"), cxb = cpu_be->alloc(dim * 4, "xb2");
  cpu_be->matmul(cwt, *ca, 1, *cxb);
  cpu_be->add(*cx, *cxb, dim, *cx);
  cpu_be->rms_norm(*cx, *cnw, 1, dim, 1e-5f, *cxb);
  BufferPtr cy = cpu_be->alloc(dim * 4, "y");
  cpu_be->matmul(cwt, *cxb, 1, *cy);
  EXPECT_LT(max_rel_error(got, read_back(*cpu_be, *cy, dim)), 1e-4);
}

}  // namespace
}  // namespace fkv::test
