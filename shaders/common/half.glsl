// fp32 -> f16 bits, rounding to nearest even like util/half.h float_to_half, bit for bit (kv_store.comp,
// rope_kv_store.comp).
uint to_half(float f) {
  const uint u = floatBitsToUint(f);
  const uint sign = (u >> 16) & 0x8000u;
  const uint a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0u);
  if (a >= 0x477FF000u) return sign | 0x7C00u;
  if (a < 0x38800000u) {
    // Subnormal half: the value in units of 2^-24, rounded to nearest even. Shifting the float's
    // significand (implicit bit included) gives the same result as the reference's float arithmetic.
    const uint e = a >> 23;
    if (e < 102u) return sign;  // below 2^-25: rounds to zero
    const uint m = (a & 0x7FFFFFu) | 0x800000u;
    const uint shift = 126u - e;  // value = m * 2^(e - 150) = (m >> (126 - e)) units of 2^-24
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
