// The FFT middle pass's column plan (src/backend/vulkan/vulkan_fft_plan.h): a pure function, checked here at
// the shapes whose speed docs/VULKAN.md measured, on an H100's shared memory (48 KiB) and lavapipe's (32
// KiB).
#include <gtest/gtest.h>

#include "backend/vulkan/vulkan_fft_plan.h"

namespace fkv::test {
namespace {

constexpr size_t kH100Shared = 48 * 1024;
constexpr size_t kLavapipeShared = 32 * 1024;
constexpr uint32_t kEntries = 2048;  // the host's default FFT entries a workgroup
constexpr uint32_t kWorkgroup = 256;

// The 8B shape (G 4, head_dim 128, 8 KV heads) decoding one query over a middle of period T.
uint32_t eight_b_columns(uint32_t N, uint32_t T, size_t shared) {
  const uint32_t vb = fft_columns(4, N, T, 128, kEntries, kWorkgroup, shared);
  return fft_columns_widened(vb, T / N, 8, 4, N, T, 128, kWorkgroup, shared);
}

TEST(FftPlan, EntriesGiveTheColumnsBeforeWidening) {
  EXPECT_EQ(fft_columns(4, 128, 32768, 128, kEntries, kWorkgroup, kH100Shared), 4u);
  EXPECT_EQ(fft_columns(4, 512, 32768, 128, kEntries, kWorkgroup, kH100Shared), 1u);
  EXPECT_EQ(fft_columns(4, 64, 4096, 64, kEntries, kWorkgroup, kLavapipeShared), 8u);
  // One KV head's query (G 1) at N 16 would take 128 columns: capped at workgroup / 8.
  EXPECT_EQ(fft_columns(1, 16, 5120, 64, kEntries, kWorkgroup, kLavapipeShared), 32u);
  EXPECT_EQ(fft_columns(1, 16, 5120, 64, kEntries, 128, kLavapipeShared), 16u);
  // G 3 (the default model): 2048 / (3 · 64) = 10 columns, rounded down to a power of two.
  EXPECT_EQ(fft_columns(3, 64, 4096, 64, kEntries, kWorkgroup, kLavapipeShared), 8u);
  // More entries than the shared memory holds: halved until it fits (N 512, 8 columns need ~72 KiB).
  EXPECT_EQ(fft_columns(4, 512, 32768, 128, 4 * 8 * 512, kWorkgroup, kH100Shared), 4u);
  EXPECT_EQ(fft_columns(4, 512, 32768, 128, 4 * 8 * 512, kWorkgroup, kLavapipeShared), 2u);
}

TEST(FftPlan, ShapesThePassCannotTake) {
  EXPECT_EQ(fft_columns(4, 96, 9600, 128, kEntries, kWorkgroup, kH100Shared), 0u);    // N not a power of 2
  EXPECT_EQ(fft_columns(4, 128, 32700, 128, kEntries, kWorkgroup, kH100Shared), 0u);  // T not a multiple of N
  EXPECT_EQ(fft_columns(4, 128, 32768, 256, kEntries, 128, kH100Shared), 0u);         // head_dim > workgroup
  EXPECT_EQ(fft_columns(32, 128, 32768, 128, kEntries, kWorkgroup, kH100Shared), 0u);  // G > 16
  EXPECT_EQ(fft_columns(4, 1, 32768, 128, kEntries, kWorkgroup, kH100Shared), 0u);     // N < 2
  EXPECT_EQ(fft_columns(4, 128, 32768, 128, kEntries, kWorkgroup, 4096), 0u);          // one column too big
  EXPECT_EQ(fft_columns_widened(0, 256, 8, 4, 128, 32768, 128, kWorkgroup, kH100Shared), 0u);
}

TEST(FftPlan, WidensWhileTwoHundredFiftySixWorkgroupsRemain) {
  // W 256 N 128: 8 columns at 32K (256 workgroups), 4 at 8K (64 workgroups: not widened).
  EXPECT_EQ(eight_b_columns(128, 32768, kH100Shared), 8u);
  EXPECT_EQ(eight_b_columns(128, 8192, kH100Shared), 4u);
  // Defaults (N 512): 1 column at 8K, 2 at 32K, 4 at 64K (where lavapipe's 32 KiB holds only 2).
  EXPECT_EQ(eight_b_columns(512, 8192, kH100Shared), 1u);
  EXPECT_EQ(eight_b_columns(512, 32768, kH100Shared), 2u);
  EXPECT_EQ(eight_b_columns(512, 65536, kH100Shared), 4u);
  EXPECT_EQ(eight_b_columns(512, 65536, kLavapipeShared), 2u);
  // More queries per call make more workgroups per column block.
  const uint32_t vb = fft_columns(4, 128, 8192, 128, kEntries, kWorkgroup, kH100Shared);
  EXPECT_EQ(fft_columns_widened(vb, 64, 8 * 8, 4, 128, 8192, 128, kWorkgroup, kH100Shared), 16u);
}

// split_middle_fft.comp's kept K dots need every plan's columns to be a power of two <= workgroup / 8 (an
// invocation's rows then start their kept segments at the same element of a 16-byte block).
TEST(FftPlan, ColumnsArePowersOfTwoUpToAnEighthOfTheWorkgroup) {
  for (uint32_t wg : {64u, 128u, 256u, 1024u})
    for (uint32_t G : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 16u})
      for (uint32_t N : {2u, 16u, 64u, 128u, 512u}) {
        for (uint32_t entries : {1u, 100u, 2048u, 65536u}) {
          const uint32_t T = 64 * N;
          const uint32_t vb = fft_columns(G, N, T, 64, entries, wg, kLavapipeShared);
          const uint32_t wide = fft_columns_widened(vb, T / N, 1, G, N, T, 64, wg, kLavapipeShared);
          for (uint32_t c : {vb, wide}) {
            SCOPED_TRACE(testing::Message()
                         << "wg " << wg << " G " << G << " N " << N << " entries " << entries);
            if (c == 0) continue;  // the pass does not take the shape
            EXPECT_EQ(c & (c - 1), 0u) << c;
            EXPECT_LE(c, wg / 8);
          }
        }
      }
}

}  // namespace
}  // namespace fkv::test
