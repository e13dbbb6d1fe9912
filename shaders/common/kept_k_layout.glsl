// Where K's kept rows live in the Vulkan backend (docs/VULKAN.md "K's kept rows by columns"; the host's twin
// is vulkan_kept_layout.h). The middle's rows m = v + R·u (column v < R, u < T / R) are stored word-plane by
// word-plane, each plane column after column: word w of row m at w·T + v·(T / R) + u, where a row's word w
// holds its kept elements 2w and 2w + 1 (f16; the last word's upper half is padding when the row has an odd
// count) or element w (f32). R = T / N when N divides T (the FFT middle pass's columns: a workgroup's rows of
// one column are then contiguous in every plane), else 1 (plain dims-major). V's kept rows stay row after row
// ([T, n_keep]): the passes read them a row at a time.
#ifndef KEPT_K_LAYOUT_GLSL
#define KEPT_K_LAYOUT_GLSL

uint kept_k_columns(uint period, uint n_freq) {
  return period > 0u && n_freq > 0u && period % n_freq == 0u ? period / n_freq : 1u;
}

// The words of one row of n_keep kept elements.
uint kept_k_row_words(uint n_keep, bool f16) { return f16 ? (n_keep + 1u) / 2u : n_keep; }

// The word index of word w of middle row m, with column_len = period / columns (readers that look up many
// elements compute it once: an integer division costs tens of instructions).
uint kept_k_word_at(uint m, uint w, uint period, uint columns, uint column_len) {
  const uint u = m / columns;
  return w * period + (m - u * columns) * column_len + u;
}
uint kept_k_word(uint m, uint w, uint period, uint columns) {
  return kept_k_word_at(m, w, period, columns, period / columns);
}

// The readers' element lookup: KEPT_K_READER(arr), in a shader whose kept K words are the array `arr`, whose
// push constants `p` hold period and n_freq and which defines KV_F16, defines float kk_at(uint r, uint e)
// (kept element e of middle row r) and kept_k_reader_init(), which main calls before the first read so that
// a read costs one integer division (the column count and length are computed once).
#define KEPT_K_READER(arr)                                                           \
  uint kcols = 1u, kcol_len = 1u;                                                    \
  void kept_k_reader_init() {                                                        \
    kcols = kept_k_columns(p.period, p.n_freq);                                      \
    kcol_len = p.period / kcols;                                                     \
  }                                                                                  \
  float kk_at(uint r, uint e) {                                                      \
    const uint w = kept_k_word_at(r, KV_F16 ? e >> 1 : e, p.period, kcols, kcol_len); \
    if (KV_F16) {                                                                    \
      const vec2 v = unpackHalf2x16(arr[w]);                                         \
      return (e & 1u) == 0u ? v.x : v.y;                                             \
    }                                                                                \
    return uintBitsToFloat(arr[w]);                                                  \
  }

#endif
