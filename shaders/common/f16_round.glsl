// fp32 -> f16 bits, round to nearest even, bit for bit like util/half.h float_to_half (the same function as
// kv_store.comp's, shared here by the split-cache shaders).
uint f16_bits(float f) {
  const uint u = floatBitsToUint(f);
  const uint sign = (u >> 16) & 0x8000u;
  const uint a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0u);
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  if (a < 0x38800000u) {
    const uint e = a >> 23;
    if (e < 102u) return sign;
    const uint m = (a & 0x7FFFFFu) | 0x800000u;
    const uint shift = 126u - e;
    const uint q = m >> shift;
    const uint rem = m & ((1u << shift) - 1u);
    const uint half_ulp = 1u << (shift - 1u);
    const uint r = q + ((rem > half_ulp || (rem == half_ulp && (q & 1u) == 1u)) ? 1u : 0u);
    return sign | r;
  }
  uint h = (a >> 13) - (112u << 10);
  const uint rest = a & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) h += 1u;
  return sign | h;
}

// The value an f16 cache would hold for f.
float f16_round(float f) { return unpackHalf2x16(f16_bits(f)).x; }
