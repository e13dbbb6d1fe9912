// One weight binding's slot loads for the decode matvec (common/matvec_ops.glsl), included once per weight
// binding. Before including, define MV_W and MV_W4 (the binding's uint and uvec4 views) and MV_LOAD_SLOT
// (the name of the function defined here); they are undefined at the end.
//
// MV_LOAD_SLOT(rb, s): the raw data of slot s of the row starting at byte rb. F16: the slot's 16 bytes;
// Q4_0 and Q4_0X8: (scale bits, nibble word); Q4_1: (scale and min bits, nibble word); Q8_0: (scale bits,
// bytes 0-3, bytes 4-7).
uvec4 MV_LOAD_SLOT(uint rb, uint s) {
  if (WTYPE == T_F16) return MV_W4[(rb >> 4) + s];
  if (WTYPE == T_Q4_0X8) {
    // Slot s: run s / 32, block (s / 4) % 8 of it, quarter s % 4: nibble word 4 + s % 32 of the run; the
    // scale is half (s / 4) % 2 of scale word (s / 8) % 4. Rows start 16-byte aligned.
    const uint run = (rb >> 2) + (s >> 5) * 36u;
    return uvec4(MV_W[run + ((s >> 3) & 3u)] >> ((s & 4u) << 2), MV_W[run + 4u + (s & 31u)], 0u, 0u);
  }
  const uint blk = s >> 2, q = s & 3u;
  if (WTYPE == T_Q4_0) {
    const uint b = rb + blk * 18u;
    return uvec4(MV_HALF_AT(MV_W, b), MV_WORD_AT(MV_W, b + 2u + 4u * q), 0u, 0u);
  }
  if (WTYPE == T_Q4_1) {
    const uint b = rb + blk * 20u;  // rows of Q4_1 are whole words
    return uvec4(MV_W[b >> 2], MV_W[(b >> 2) + 1u + q], 0u, 0u);
  }
  const uint b = rb + blk * 34u;  // Q8_0
  return uvec4(MV_HALF_AT(MV_W, b), MV_WORD_AT(MV_W, b + 2u + 8u * q), MV_WORD_AT(MV_W, b + 6u + 8u * q), 0u);
}
#undef MV_W
#undef MV_W4
#undef MV_LOAD_SLOT
