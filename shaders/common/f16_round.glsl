// The value an f16 cache would hold for f (the split-cache shaders read chunk rows "rounded to the cache
// type"); the rounding itself is half.glsl's, bit for bit like util/half.h float_to_half.
#include "half.glsl"

float f16_round(float f) { return unpackHalf2x16(to_half(f)).x; }
vec4 f16_round4(vec4 v) { return vec4(f16_round(v.x), f16_round(v.y), f16_round(v.z), f16_round(v.w)); }
