// How the FFT middle pass (shaders/split_middle_fft.comp) divides a fitted middle over workgroups: how many
// of the middle's columns (rows v + R·u, u < N) one workgroup takes. Pure functions of the shape and the
// device's shared memory, so that tests can check them without a GPU.
#pragma once
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace fkv {

// The most columns one workgroup takes: a power of two <= workgroup / 8, so that an invocation's RPT score
// rows (tid·RPT + k, RPT = columns·N / workgroup <= N / 8) lie in one column, neighbours in K's kept word
// planes (split_middle_fft.comp kept_k_dots: one load of them a word, q read once for them).
constexpr uint32_t fft_max_columns(uint32_t workgroup) {
  return std::bit_floor(std::max(workgroup / 8, 1u));
}

// Columns per workgroup (VB) for G query heads per KV head, N frequencies, period T and head_dim D when a
// workgroup of `workgroup` invocations holds `entries` FFT entries (query heads x columns x N; at least one
// column): a power of two, at most what the entries give and fft_max_columns(workgroup), halved until the
// pass's shared memory (one FFT entry per head pair, column and frequency; the twiddles, q at the kept dims,
// the reductions) fits `shared_limit` bytes. 0 if the pass cannot take the shape: N a power of two >= 2
// dividing T, D <= workgroup, G <= 16, or one column does not fit.
uint32_t fft_columns(uint32_t G, uint32_t N, uint32_t T, uint32_t D, uint32_t entries, uint32_t workgroup,
                     size_t shared_limit);

// `vb` (from fft_columns) doubled, up to fft_max_columns(workgroup), while at least kFftMinWorkgroups
// workgroups remain for `columns` columns with rows and `groups_per_block` workgroups per column block
// (queries x KV heads), and the shared memory fits. Fewer, wider workgroups write fewer partials and set up q
// and the twiddles once per more rows (docs/VULKAN.md "Columns a workgroup" has the H100 measurements behind
// the threshold).
constexpr uint32_t kFftMinWorkgroups = 256;
uint32_t fft_columns_widened(uint32_t vb, uint32_t columns, uint32_t groups_per_block, uint32_t G, uint32_t N,
                             uint32_t T, uint32_t D, uint32_t workgroup, size_t shared_limit);

}  // namespace fkv
