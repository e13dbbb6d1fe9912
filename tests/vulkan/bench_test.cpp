// Timing of the decode-critical ops, off by default (DISABLED_): run with --gtest_also_run_disabled_tests
// on a GPU (tools/gpu-check-vulkan.sh does). Prints lines starting with BENCH.
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

}  // namespace
}  // namespace fkv::test
