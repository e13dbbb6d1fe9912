// A position's entry into a split cache's middle (split_kv_middle.comp, split_kv_middle_pair.comp), the
// parts that read one K-or-V part's buffers; included once per part. Before including, define the part's
// arrays SKE_WIN (window ring, typed words), SKE_CHUNK (the chunk, fp32), SKE_DIMS (dims table), SKE_KEPT
// (kept rows, typed words), SKE_COEF and SKE_NORM (fp32), SKE_COLUMNS (a bool: the kept rows are K's, stored
// by columns as common/kept_k_layout.glsl says; else row after row, [T, n_keep]), and the names of the
// functions defined here: SKE_CACHE_VALUE, SKE_ELEMENT, SKE_KEPT_VALUE, SKE_STORE_KEPT, SKE_STORE_KEPT_WORD,
// SKE_DECODE_ITEM. They are undefined at the end. The includer declares `p` (sink, ring, n_kv, head_dim,
// period, n_freq), `basis`, KV_F16 and the globals pos0 (the chunk's first position: earlier positions are
// in the ring) and pos_first.

#ifndef SPLIT_KV_ENTER_ONCE
#define SPLIT_KV_ENTER_ONCE
#include "common/kept_k_layout.glsl"
// The kept words of middle row m0 (row after row, f16 words may straddle rows; by columns, whole words of
// the row), then a decode entry's items: those words, then one per (compressed dim, frequency).
uint split_kv_kept_words(uint m0, uint n_keep, bool columns) {
  if (columns) return kept_k_row_words(n_keep, KV_F16);
  const uint e0 = m0 * n_keep, e1 = (m0 + 1u) * n_keep;
  return KV_F16 ? (e1 + 1u) / 2u - e0 / 2u : e1 - e0;
}
uint split_kv_decode_items(uint m0, uint n_keep, uint n_comp, bool columns) {
  return split_kv_kept_words(m0, n_keep, columns) + n_comp * p.n_freq;
}
#endif

// Element e of position pos's row as the cache held it: from the ring when stored before this chunk, else
// from the chunk rounded to the cache type.
float SKE_CACHE_VALUE(uint pos, uint e) {
  const uint row_len = p.n_kv * p.head_dim;
  if (pos < pos0) {
    const uint at = ((pos - p.sink) % p.ring) * row_len + e;
    if (KV_F16) {
      const vec2 v = unpackHalf2x16(SKE_WIN[at >> 1]);
      return (at & 1u) == 0u ? v.x : v.y;
    }
    return uintBitsToFloat(SKE_WIN[at]);
  }
  const float x = SKE_CHUNK[(pos - pos0) * row_len + e];
  return KV_F16 ? f16_round(x) : x;
}

// The element (head · head_dim + dim) of entry i of the kept (list 0) or compressed (list 1) dims, from the
// table's element lists (SplitKvDims::device_table): one read instead of a search of the offsets.
uint SKE_ELEMENT(uint list, uint i, uint n_keep, uint n_comp) {
  return uint(SKE_DIMS[2u * (p.n_kv + 1u) + n_keep + n_comp + (list == 0u ? 0u : n_keep) + i]);
}

float SKE_KEPT_VALUE(uint el, uint n_keep, uint n_comp) {  // el: element index in the kept rows
  const uint m = el / n_keep, i = el % n_keep;
  return SKE_CACHE_VALUE(p.sink + m, SKE_ELEMENT(0u, i, n_keep, n_comp));
}

// Kept unit u (f16: word u, of which only the halves in elements [e0, e1) change, the other row's half is
// kept; f32: element u) written from the cache's values.
void SKE_STORE_KEPT(uint u, uint e0, uint e1, uint n_keep, uint n_comp) {
  if (KV_F16) {
    const uint old = SKE_KEPT[u];
    uint lo = old & 0xFFFFu, hi = old >> 16;
    if (2u * u >= e0) lo = to_half(SKE_KEPT_VALUE(2u * u, n_keep, n_comp));
    if (2u * u + 1u < e1) hi = to_half(SKE_KEPT_VALUE(2u * u + 1u, n_keep, n_comp));
    SKE_KEPT[u] = lo | (hi << 16);
  } else {
    SKE_KEPT[u] = floatBitsToUint(SKE_KEPT_VALUE(u, n_keep, n_comp));
  }
}

// Word w of middle row m by columns (SKE_COLUMNS), written whole from the cache's values: elements 2w and
// 2w + 1 of the row (f16; a half past its n_keep elements is 0) or element w (f32).
void SKE_STORE_KEPT_WORD(uint m, uint w, uint n_keep, uint n_comp) {
  const uint at = kept_k_word(m, w, p.period, kept_k_columns(p.period, p.n_freq));
  if (KV_F16) {
    const uint e = 2u * w;
    const uint lo = to_half(SKE_KEPT_VALUE(m * n_keep + e, n_keep, n_comp));
    const uint hi = e + 1u < n_keep ? to_half(SKE_KEPT_VALUE(m * n_keep + e + 1u, n_keep, n_comp)) : 0u;
    SKE_KEPT[at] = lo | (hi << 16);
  } else {
    SKE_KEPT[at] = floatBitsToUint(SKE_KEPT_VALUE(m * n_keep + w, n_keep, n_comp));
  }
}

// Item g of a decode step's entry of position pos_first (middle row m0) after the fit: kept word g for g
// below the row's kept words (row after row, f16 words may straddle rows: the other row's half is kept; by
// columns, the row's own word), else one
// (compressed dim c, frequency f): the value's projection added to the coefficients (fourier_accumulate's
// arithmetic) and, for f = 0, to the running sum / min / max.
void SKE_DECODE_ITEM(uint g, uint m0, uint n_keep, uint n_comp) {
  const uint e0 = m0 * n_keep, e1 = (m0 + 1u) * n_keep;
  const uint kept_items = split_kv_kept_words(m0, n_keep, SKE_COLUMNS);
  if (g < kept_items) {
    if (SKE_COLUMNS)
      SKE_STORE_KEPT_WORD(m0, g, n_keep, n_comp);
    else
      SKE_STORE_KEPT((KV_F16 ? e0 / 2u : e0) + g, e0, e1, n_keep, n_comp);
    return;
  }
  const uint cf = g - kept_items, c = cf / p.n_freq, f = cf % p.n_freq;
  const float x = SKE_CACHE_VALUE(pos_first, SKE_ELEMENT(1u, c, n_keep, n_comp));
  const vec2 b = basis[(f * m0) % p.period];
  precise float tc = x * b.x;
  precise float ts = x * b.y;
  const uint at = c * 2u * p.n_freq + f;
  precise float cc = SKE_COEF[at] + tc;
  precise float ss = SKE_COEF[at + p.n_freq] + ts;
  SKE_COEF[at] = cc;
  SKE_COEF[at + p.n_freq] = ss;
  if (f == 0u) {
    precise float sum = SKE_NORM[c * 8u + 4u] + x;
    SKE_NORM[c * 8u + 4u] = sum;
    SKE_NORM[c * 8u + 5u] = min(SKE_NORM[c * 8u + 5u], x);
    SKE_NORM[c * 8u + 6u] = max(SKE_NORM[c * 8u + 6u], x);
  }
}

#undef SKE_WIN
#undef SKE_CHUNK
#undef SKE_DIMS
#undef SKE_KEPT
#undef SKE_COEF
#undef SKE_NORM
#undef SKE_CACHE_VALUE
#undef SKE_ELEMENT
#undef SKE_KEPT_VALUE
#undef SKE_STORE_KEPT
#undef SKE_STORE_KEPT_WORD
#undef SKE_COLUMNS
#undef SKE_DECODE_ITEM
