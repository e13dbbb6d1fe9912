// Where the Vulkan backend keeps K's kept rows of a split cache's middle (SplitKvPart::kept of K): by
// columns, as shaders/common/kept_k_layout.glsl says (docs/VULKAN.md "K's kept rows by columns"). The
// shaders compute the same indices; this twin is for the host (tests that read the rows back).
#pragma once
#include <cstdint>

namespace fkv {

// R: the columns of the middle's rows m = v + R·u (T / N when N divides T, else 1).
constexpr uint32_t kept_k_columns(uint32_t period, uint32_t n_freq) {
  return period > 0 && n_freq > 0 && period % n_freq == 0 ? period / n_freq : 1;
}

// 32-bit words of one row of n_keep kept elements (f16: two a word, the last one's upper half padding when
// n_keep is odd).
constexpr uint32_t kept_k_row_words(uint32_t n_keep, bool f16) { return f16 ? (n_keep + 1) / 2 : n_keep; }

// The index (in 32-bit words) of word w of middle row m.
constexpr uint64_t kept_k_word(uint32_t m, uint32_t w, uint32_t period, uint32_t columns) {
  return uint64_t(w) * period + uint64_t(m % columns) * (period / columns) + m / columns;
}

}  // namespace fkv
