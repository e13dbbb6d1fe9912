// Weight decoding for every GGUF storage type, over a weight buffer bound as raw 32-bit words.
// The including shader declares `w` (readonly uint array) and the specialization constant WTYPE
// (the ggml type id, or T_Q4_0X8) before including this file.
//
// Weights are read by byte address: quantized blocks are 18, 34 or 210 bytes long, so a block or row may
// start 2 bytes into a word. Reading words and shifting works on every device; it needs no 8/16-bit
// storage feature.

const uint T_F32 = 0u;
const uint T_F16 = 1u;
const uint T_Q4_0 = 2u;
const uint T_Q4_1 = 3u;
const uint T_Q8_0 = 8u;
const uint T_Q4_K = 12u;
const uint T_Q6_K = 14u;
const uint T_BF16 = 30u;
// Not a ggml type: Q4_0 rows repacked by the backend's upload_weight (src/model/quant.h Q4_0x8): runs of 8
// blocks (144 bytes, 36 words, 16-byte aligned), the 8 f16 scales in words 0-3, block k's 16 nibble bytes
// in words 4 + 4k .. 7 + 4k (ggml's order within the block). Rows are multiples of 256 values.
const uint T_Q4_0X8 = 258u;

// Every type is decoded in units of 32 values: one block (Q4_0, Q4_1, Q8_0), one sub-block (Q4_K, Q6_K)
// or 32 consecutive values (F32, F16, BF16; the last unit of a row may be partial for these).
const uint UNIT = 32u;

uint w_u8(uint b) { return (w[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
uint w_u16(uint b) { return (w[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu; }  // b even
uint w_u32(uint b) {                                                   // b even
  uint i = b >> 2;
  if ((b & 2u) == 0u) return w[i];
  return (w[i] >> 16) | (w[i + 1u] << 16);
}
float f16_at(uint b) { return unpackHalf2x16(w_u16(b)).x; }
float bf16_bits(uint h) { return uintBitsToFloat(h << 16); }
uint byte_of(uint word, uint k) { return (word >> (8u * k)) & 0xFFu; }
int sbyte_of(uint word, uint k) { return int(word << (24u - 8u * k)) >> 24; }

// Bytes in a row of `cols` values.
uint row_bytes(uint cols) {
  if (WTYPE == T_F32) return cols * 4u;
  if (WTYPE == T_F16 || WTYPE == T_BF16) return cols * 2u;
  if (WTYPE == T_Q4_0 || WTYPE == T_Q4_0X8) return cols / 32u * 18u;
  if (WTYPE == T_Q4_1) return cols / 32u * 20u;
  if (WTYPE == T_Q8_0) return cols / 32u * 34u;
  if (WTYPE == T_Q4_K) return cols / 256u * 144u;
  return cols / 256u * 210u;  // Q6_K
}

// Decodes unit u (values 32u .. 32u+31) of the row starting at byte rb into v. For plain float types,
// values at or past `cols` come out as 0.
void decode_unit(uint rb, uint u, uint cols, out float v[32]) {
  if (WTYPE == T_Q4_0) {
    uint b = rb + u * 18u;
    float d = f16_at(b);
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
      uint q = w_u32(b + 2u + 4u * k);
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        uint by = byte_of(q, j);
        v[4u * k + j] = float(int(by & 0xFu) - 8) * d;
        v[4u * k + j + 16u] = float(int(by >> 4) - 8) * d;
      }
    }
  } else if (WTYPE == T_Q4_0X8) {
    // Aligned word loads: the row starts 16-byte aligned.
    const uint run = rb / 4u + (u / 8u) * 36u, k = u % 8u;
    float d = unpackHalf2x16(w[run + k / 2u] >> (16u * (k % 2u))).x;
    [[unroll]] for (uint i = 0u; i < 4u; ++i) {
      uint q = w[run + 4u + 4u * k + i];
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        uint by = byte_of(q, j);
        v[4u * i + j] = float(int(by & 0xFu) - 8) * d;
        v[4u * i + j + 16u] = float(int(by >> 4) - 8) * d;
      }
    }
  } else if (WTYPE == T_Q4_1) {
    uint b = rb + u * 20u;
    float d = f16_at(b), m = f16_at(b + 2u);
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
      uint q = w_u32(b + 4u + 4u * k);
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        uint by = byte_of(q, j);
        precise float lo = float(by & 0xFu) * d + m, hi = float(by >> 4) * d + m;  // unfused, as on the CPU
        v[4u * k + j] = lo;
        v[4u * k + j + 16u] = hi;
      }
    }
  } else if (WTYPE == T_Q8_0) {
    uint b = rb + u * 34u;
    float d = f16_at(b);
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
      uint q = w_u32(b + 2u + 4u * k);
      [[unroll]] for (uint j = 0u; j < 4u; ++j) v[4u * k + j] = float(sbyte_of(q, j)) * d;
    }
  } else if (WTYPE == T_Q4_K) {
    uint b = rb + (u / 8u) * 144u;
    uint s = u % 8u;
    float d = f16_at(b), dmin = f16_at(b + 2u);
    uint sc, mn;
    if (s < 4u) {
      sc = w_u8(b + 4u + s) & 63u;
      mn = w_u8(b + 8u + s) & 63u;
    } else {
      sc = (w_u8(b + 8u + s) & 0xFu) | ((w_u8(b + s) >> 6) << 4);
      mn = (w_u8(b + 8u + s) >> 4) | ((w_u8(b + 4u + s) >> 6) << 4);
    }
    float d1 = d * float(sc), o1 = dmin * float(mn);
    uint qb = b + 16u + 32u * (s / 2u);
    uint shift = (s & 1u) * 4u;
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
      uint q = w[(qb >> 2) + k];  // qs is 4-byte aligned: blocks and rows are multiples of 144 bytes
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        precise float y = d1 * float((byte_of(q, j) >> shift) & 0xFu) - o1;  // unfused, as on the CPU
        v[4u * k + j] = y;
      }
    }
  } else if (WTYPE == T_Q6_K) {
    uint b = rb + (u / 8u) * 210u;
    uint s = u % 8u;
    uint h = s / 4u, qq = s % 4u;
    float d = f16_at(b + 208u);
    uint ql = b + 64u * h + (qq & 1u) * 32u;
    uint lshift = (qq >> 1) * 4u;
    uint qh = b + 128u + 32u * h;
    uint hshift = 2u * qq;
    uint scb = b + 192u + 8u * h + 2u * qq;
    float d0 = d * float(int(w_u8(scb) << 24) >> 24);
    float d1 = d * float(int(w_u8(scb + 1u) << 24) >> 24);
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
      uint lo = w_u32(ql + 4u * k), hi = w_u32(qh + 4u * k);
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        int q = int(((byte_of(lo, j) >> lshift) & 0xFu) | (((byte_of(hi, j) >> hshift) & 3u) << 4)) - 32;
        v[4u * k + j] = (k < 4u ? d0 : d1) * float(q);
      }
    }
  } else {
    // Plain floats; rows of F16/BF16 may start 2 bytes into a word when cols is odd.
    uint c0 = u * UNIT;
    bool full = c0 + UNIT <= cols;
    if (WTYPE == T_F32) {
      uint wi = rb / 4u + c0;
      [[unroll]] for (uint j = 0u; j < UNIT; ++j) v[j] = (full || c0 + j < cols) ? uintBitsToFloat(w[wi + j]) : 0.0;
    } else if (full && (rb & 3u) == 0u) {
      uint wi = rb / 4u + c0 / 2u;
      [[unroll]] for (uint k = 0u; k < 16u; ++k) {
        uint p = w[wi + k];
        if (WTYPE == T_F16) {
          vec2 f = unpackHalf2x16(p);
          v[2u * k] = f.x;
          v[2u * k + 1u] = f.y;
        } else {
          v[2u * k] = bf16_bits(p & 0xFFFFu);
          v[2u * k + 1u] = bf16_bits(p >> 16);
        }
      }
    } else {
      [[unroll]] for (uint j = 0u; j < UNIT; ++j) {
        float x = 0.0;
        if (c0 + j < cols) {
          uint h = w_u16(rb + 2u * (c0 + j));
          x = WTYPE == T_F16 ? unpackHalf2x16(h).x : bf16_bits(h);
        }
        v[j] = x;
      }
    }
  }
}

uint units_per_row(uint cols) { return (cols + UNIT - 1u) / UNIT; }
