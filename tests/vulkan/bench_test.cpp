// Timing of the decode-critical ops, off by default (DISABLED_): run with --gtest_also_run_disabled_tests
// on a GPU (tools/gpu-check-vulkan.sh does). Prints lines starting with BENCH.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "model/quant.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

double time_ms(Backend& be, int reps, const std::function<void()>& f) {
  f();
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  be.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

TEST_F(VulkanTest, DISABLED_BenchDecodeOps) {
  struct Shape {
    const char* name;
    int64_t rows, cols;
  };
  // "q4_0x8": Q4_0 uploaded as the model loader does (upload_weight repacks it); "q4_0": the GGUF layout.
  struct Layout {
    GgmlType type;
    bool as_weight;
  };
  for (Layout l : {Layout{GgmlType::F16, false}, Layout{GgmlType::Q4_0, true}, Layout{GgmlType::Q4_0, false},
                   Layout{GgmlType::Q8_0, false}, Layout{GgmlType::Q4_K, false}}) {
    const GgmlType type = l.type;
    const std::string label =
        l.as_weight && q4_0x8_applies(type, 4096) ? "q4_0x8" : type_name(uint32_t(type));
    for (Shape s :
         {Shape{"ffn_up 8B", 14336, 4096}, Shape{"ffn_down 8B", 4096, 14336}, Shape{"wq 8B", 4096, 4096}}) {
      const size_t bytes = row_bytes(type, s.cols) * size_t(s.rows);
      BufferPtr w = vk->alloc(bytes, "w");
      std::vector<uint8_t> zero(bytes, 0);
      const Weight wt{w.get(), type, s.rows, s.cols};
      if (l.as_weight) {
        vk->upload_weight(wt, zero.data(), bytes);
      } else {
        vk->upload(*w, 0, zero.data(), bytes);
      }
      BufferPtr x = vk->alloc(size_t(s.cols) * 4 * 256, "x"), o = vk->alloc(size_t(s.rows) * 4 * 256, "o");
      for (int n : {1, 256}) {
        const double ms = time_ms(*vk, n == 1 ? 50 : 5, [&] { vk->matmul(wt, *x, n, *o); });
        std::printf("BENCH matmul %-6s %-12s n=%3d %8.3f ms  %7.1f GB/s  %7.2f TFLOP/s\n", label.c_str(),
                    s.name, n, ms, double(bytes) / ms / 1e6, 2.0 * s.rows * s.cols * n / ms / 1e9);
      }
    }
  }
  AttentionShape a{32, 8, 128, 0.088f};
  for (int len : {4096, 32768}) {
    const size_t kv = size_t(len) * 8 * 128 * 2;
    BufferPtr k = vk->alloc(kv, "k"), v = vk->alloc(kv, "v"), q = vk->alloc(32 * 128 * 4 * 256, "q"),
              o = vk->alloc(32 * 128 * 4 * 256, "o");
    KvLayer layer{k.get(), v.get(), KvType::kF16, len};
    const double ms = time_ms(*vk, 20, [&] { vk->attention(*q, 1, len - 1, a, layer, *o); });
    std::printf("BENCH attention decode len=%d %8.3f ms  %7.1f GB/s\n", len, ms, 2.0 * double(kv) / ms / 1e6);
    const double ms2 = time_ms(*vk, 2, [&] { vk->attention(*q, 256, len - 256, a, layer, *o); });
    std::printf("BENCH attention prefill n=256 len=%d %8.3f ms\n", len, ms2);
  }
}

// A decode step's matvecs as the engine issues them, over a pool of layers larger than the GPU's L2 (so every
// weight byte comes from memory, as in a real decode): q/k/v of one x (fused by the backend), o, gate/up with
// the SwiGLU (folded), down; Llama-3-8B shapes. Prints us a layer and the weights' GB/s, then each product
// alone and the 128256-row output projection.
TEST_F(VulkanTest, DISABLED_BenchDecodeMatvecs) {
  constexpr int64_t kDim = 4096, kKv = 1024, kFf = 14336, kVocab = 128256;
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    struct Layer {
      std::vector<BufferPtr> bufs;
      std::vector<Weight> w;  // q k v o gate up down
    };
    const int64_t shapes[7][2] = {{kDim, kDim}, {kKv, kDim}, {kKv, kDim}, {kDim, kDim},
                                  {kFf, kDim},  {kFf, kDim}, {kDim, kFf}};
    size_t layer_bytes = 0;
    for (const auto& s : shapes) layer_bytes += row_bytes(type, s[1]) * size_t(s[0]);
    const int layers = int(std::max<size_t>(2, (size_t(400) << 20) / layer_bytes + 1));
    std::vector<Layer> pool(layers);
    for (Layer& l : pool) {
      for (const auto& s : shapes) {
        const size_t bytes = row_bytes(type, s[1]) * size_t(s[0]);
        l.bufs.push_back(vk->alloc(bytes, "w"));
        l.w.push_back(Weight{l.bufs.back().get(), type, s[0], s[1]});
        std::vector<uint8_t> zero(bytes, 0);
        vk->upload_weight(l.w.back(), zero.data(), bytes);
      }
    }
    // Activations (all of the largest size, filled with a small constant). Zero weights and constant
    // activations time the fp32 matvecs as decode does (a layer here ~ the decode profile's), but they
    // flattered an integer-dot matvec that decode then measured slower (docs/PERFORMANCE.md "The Q4_0 decode
    // matvec by integer dot products"): check a new kernel in fkv-bench decode too.
    const std::vector<float> fill(kVocab, 0.01f);
    auto act = [&] {
      BufferPtr b = vk->alloc(fill.size() * 4, "act");
      vk->upload(*b, 0, fill.data(), fill.size() * 4);
      return b;
    };
    BufferPtr x = act(), q = act(), k = act(), v = act(), h = act(), g = act(), u = act();
    int next = 0;
    auto one_layer = [&] {
      const Layer& l = pool[next];
      next = (next + 1) % layers;
      vk->matmul(l.w[0], *x, 1, *q);
      vk->matmul(l.w[1], *x, 1, *k);
      vk->matmul(l.w[2], *x, 1, *v);
      vk->matmul(l.w[3], *q, 1, *h);
      vk->matmul(l.w[4], *h, 1, *g);
      vk->matmul(l.w[5], *h, 1, *u);
      vk->swiglu(*g, *u, kFf, *g);  // into gate's output, as the engine does: the backend folds it then
      vk->matmul(l.w[6], *g, 1, *x);
    };
    const int reps = 32 * layers;
    const double ms = time_ms(*vk, reps, one_layer);
    std::printf(
        "BENCH decode-matvecs %-4s layer (8B shapes, %d-layer pool) %8.2f us  %7.1f GB/s  x32 %6.3f ms\n",
        type_name(uint32_t(type)).c_str(), layers, ms * 1e3, double(layer_bytes) / ms / 1e6, 32 * ms);
    // Each product alone, chained over the pool (the same output: a barrier between dispatches, as in a
    // step).
    struct Part {
      const char* name;
      std::vector<int> mats;  // weights of one x, fused by the backend
      DeviceBuffer* in;
      std::vector<DeviceBuffer*> outs;
    };
    for (const Part& part :
         {Part{"qkv", {0, 1, 2}, x.get(), {q.get(), k.get(), v.get()}}, Part{"o", {3}, q.get(), {h.get()}},
          Part{"gate/up", {4, 5}, h.get(), {g.get(), u.get()}}, Part{"down", {6}, g.get(), {x.get()}}}) {
      size_t bytes = 0;
      for (int m : part.mats) bytes += row_bytes(type, shapes[m][1]) * size_t(shapes[m][0]);
      const double us = 1e3 * time_ms(*vk, reps, [&] {
                          const Layer& l = pool[next];
                          next = (next + 1) % layers;
                          for (size_t i = 0; i < part.mats.size(); ++i)
                            vk->matmul(l.w[part.mats[i]], *part.in, 1, *part.outs[i]);
                        });
      std::printf("BENCH decode-matvecs %-4s %-8s %8.2f us  %7.1f GB/s\n", type_name(uint32_t(type)).c_str(),
                  part.name, us, double(bytes) / us / 1e3);
    }
    const size_t out_bytes = row_bytes(type, kDim) * size_t(kVocab);
    BufferPtr wo = vk->alloc(out_bytes, "output");
    const Weight wout{wo.get(), type, kVocab, kDim};
    std::vector<uint8_t> zero(out_bytes, 0);
    vk->upload_weight(wout, zero.data(), out_bytes);
    BufferPtr logits = act();
    const double ms_out = time_ms(*vk, 10, [&] { vk->matmul(wout, *x, 1, *logits); });
    std::printf("BENCH decode-matvecs %-4s output %lldx%lld %8.2f us  %7.1f GB/s\n",
                type_name(uint32_t(type)).c_str(), (long long)kVocab, (long long)kDim, ms_out * 1e3,
                double(out_bytes) / ms_out / 1e6);
  }
}

}  // namespace
}  // namespace fkv::test
