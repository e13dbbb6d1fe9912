#include "backend/vulkan/vulkan_fft_plan.h"

#include <algorithm>

namespace fkv {

uint32_t fft_columns(uint32_t G, uint32_t N, uint32_t T, uint32_t D, uint32_t entries, uint32_t workgroup,
                     size_t shared_limit) {
  if (G == 0 || N < 2 || (N & (N - 1)) != 0 || T % N != 0 || D > workgroup || G > 16 || workgroup < 8)
    return 0;
  // The largest power of two <= the entries' columns (at least one) and <= the cap.
  for (uint32_t vb = std::bit_floor(std::clamp(entries / (G * N), 1u, fft_max_columns(workgroup)));;
       vb /= 2) {
    // buf: ⌈G/2⌉·VB·N vec2; tw: N/2 vec2; q at the kept K dims: at most D + 24 vec4s per four heads (the
    // shader's QS, QV); red, red2, stat_s.
    const size_t bytes = 8 * size_t((G + 1) / 2) * vb * N + 4 * size_t(N) +
                         16 * size_t((G + 3) / 4) * (D + 24) + 4 * size_t(G) * workgroup +
                         4 * size_t(G) * 16 + 8 * size_t(G);
    if (bytes <= shared_limit) return vb;
    if (vb == 1) return 0;
  }
}

uint32_t fft_columns_widened(uint32_t vb, uint32_t columns, uint32_t groups_per_block, uint32_t G, uint32_t N,
                             uint32_t T, uint32_t D, uint32_t workgroup, size_t shared_limit) {
  if (vb == 0) return 0;
  auto workgroups = [&](uint64_t v) { return (uint64_t(columns) + v - 1) / v * groups_per_block; };
  while (2 * vb <= fft_max_columns(workgroup) && workgroups(2 * uint64_t(vb)) >= kFftMinWorkgroups &&
         fft_columns(G, N, T, D, 2 * vb * G * N, workgroup, shared_limit) == 2 * vb)
    vb *= 2;
  return vb;
}

}  // namespace fkv
