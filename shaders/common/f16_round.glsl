// The value an f16 cache would hold for f (the split-cache shaders read chunk rows "rounded to the cache
// type"); the rounding itself is half.glsl's, bit for bit like util/half.h float_to_half.
#include "half.glsl"

float f16_round(float f) { return unpackHalf2x16(to_half(f)).x; }
