// The decode matrix-vector product on GPUs, the parts that do not depend on which weight binding is read:
// activations, slot arithmetic, the reduction of partial sums. Included by matvec.glsl (one matrix) and
// matvec_fused.glsl (two or three matrices of one input in one dispatch), after they declared the
// specialization constants WTYPE, WG, R, U, the activations `x4` (vec4), included common/dequant.glsl, and
// defined MV_RED_ROWS (rows of partial sums one workgroup reduces) and FKV_SUBGROUP_ADD.
//
// A workgroup of WG threads computes R neighbouring rows, every thread working on all R: the row is cut
// into 8-value slots, thread t takes slots t, t + WG, t + 2 WG, ..., so neighbouring threads read
// neighbouring bytes of each row and of x. Each slot's 8 activations are loaded once (two vec4) and used
// for the R rows; U slots are loaded before any is used, so R * U weight loads are in flight per thread.
// Quantized slots are a quarter of a Q4_0/Q4_1 block (one word of nibbles: values 4q..4q+3 and their
// partners 16 later) or a quarter of a Q8_0 block (8 bytes); the block scale multiplies the slot's integer
// dot product, fp32 throughout. Rows past the end are clamped (loaded, never written) and slots past the
// end are loaded at the last slot and not added, so loads need no branches.
// Q4_0 repacked at upload (T_Q4_0X8, runs of 8 blocks: scales, then nibbles) is read with aligned 32-bit
// loads only: the 32 threads of a run's slots read its 128 nibble bytes as 32 consecutive words, and each
// reads its block's scale word (4 threads share it).

// The 4 bytes at even byte address b of word array W, with no read past the word that holds the last of
// them; the 2 bytes at even byte address b, in the low half (upper bits not cleared).
uint join_words(uint b, uint lo, uint hi) { return (b & 2u) == 0u ? lo : (lo >> 16) | (hi << 16); }
#define MV_WORD_AT(W, b) join_words((b), W[(b) >> 2], W[((b) >> 2) + (((b) >> 1) & 1u)])
#define MV_HALF_AT(W, b) (W[(b) >> 2] >> (((b) & 2u) * 8u))

// The nibble of h under mask m (one of 0xF, 0xF0, 0xF00, 0xF000: the nibble times 16^j) minus `bias`, as
// a float, exactly: the bits 0x4B000000 | v are the float 2^23 + v for v < 2^23, so a mask and a
// subtraction replace a shift and an integer-to-float conversion. The factor 16^j is taken out of the
// activations instead (prep_x), once per slot for all R rows.
float nib(uint h, uint m, float bias) { return uintBitsToFloat((h & m) | 0x4B000000u) - (8388608.0 + bias); }

// The activations of slot s: F16 and Q8_0 take 8 consecutive values; Q4_0/Q4_1 values 4q..4q+3 and
// 16+4q..16+4q+3 of their block.
void load_x(uint xb4, uint s, out vec4 a, out vec4 b) {
  if (WTYPE == T_F16 || WTYPE == T_Q8_0) {
    a = x4[xb4 + 2u * s];
    b = x4[xb4 + 2u * s + 1u];
  } else {
    const uint i = xb4 + (s >> 2) * 8u + (s & 3u);
    a = x4[i];
    b = x4[i + 4u];
  }
}

// Q4_0/Q4_1: the activations divided by the 16^j that nib() leaves on each nibble (exact: powers of two),
// and (Q4_1, for its minimum) the slot's plain sum.
void prep_x(inout vec4 a, inout vec4 b, out float sum) {
  sum = 0.0;
  if (WTYPE == T_Q4_0 || WTYPE == T_Q4_0X8 || WTYPE == T_Q4_1) {
    if (WTYPE == T_Q4_1) sum = dot(a + b, vec4(1.0));
    a *= vec4(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0);
    b *= vec4(1.0 / 16.0, 1.0 / 4096.0, 1.0 / 16.0, 1.0 / 4096.0);
  }
}

// Q4_0 (bias 8) / Q4_1 (bias 0): sum over the slot's 8 nibbles of (n - bias) * x, with x from prep_x.
// Word q holds values 4q..4q+3 in its low nibbles (bits 0, 8, 16, 24) and 16+4q.. in its high ones.
float nibble_dot(uint q, float bias, vec4 a, vec4 b) {
  const uint h = q >> 16;
  const vec4 lo = vec4(nib(q, 0xFu, bias), nib(q, 0xF00u, bias * 256.0), nib(h, 0xFu, bias),
                       nib(h, 0xF00u, bias * 256.0));
  const vec4 hi = vec4(nib(q, 0xF0u, bias * 16.0), nib(q, 0xF000u, bias * 4096.0), nib(h, 0xF0u, bias * 16.0),
                       nib(h, 0xF000u, bias * 4096.0));
  return dot(lo, a) + dot(hi, b);
}

// The dot product of one slot's raw data (common/matvec_slot.glsl) with its activations.
float slot_dot(uvec4 d, vec4 a, vec4 b, float xsum) {
  if (WTYPE == T_F16) {
    return dot(vec4(unpackHalf2x16(d.x), unpackHalf2x16(d.y)), a) +
           dot(vec4(unpackHalf2x16(d.z), unpackHalf2x16(d.w)), b);
  }
  if (WTYPE == T_Q4_0 || WTYPE == T_Q4_0X8) return unpackHalf2x16(d.x).x * nibble_dot(d.y, 8.0, a, b);
  if (WTYPE == T_Q4_1) {
    // (n d + m) x summed: d * sum(n x) + m * sum(x).
    const vec2 dm = unpackHalf2x16(d.x);
    return dm.x * nibble_dot(d.y, 0.0, a, b) + dm.y * xsum;
  }
  const float scale = unpackHalf2x16(d.x).x;  // Q8_0
  const vec4 lo = vec4(sbyte_of(d.y, 0u), sbyte_of(d.y, 1u), sbyte_of(d.y, 2u), sbyte_of(d.y, 3u));
  const vec4 hi = vec4(sbyte_of(d.z, 0u), sbyte_of(d.z, 1u), sbyte_of(d.z, 2u), sbyte_of(d.z, 3u));
  return scale * (dot(lo, a) + dot(hi, b));
}

// The reduction, once per workgroup: every thread stashes its partial sum of each row r < MV_RED_ROWS
// (subgroupAdd per row: one value per subgroup; else one per thread), reduce_rows() waits for all (one
// barrier; the shared-memory tree takes log2(WG) more), then row_total(r) is the row's sum.
shared float red[MV_RED_ROWS * WG];

void stash(uint r, float v) {
#if FKV_SUBGROUP_ADD
  const float s = subgroupAdd(v);
  if (subgroupElect()) red[r * WG + gl_SubgroupID] = s;
#else
  red[r * WG + gl_LocalInvocationID.x] = v;
#endif
}

void reduce_rows() {
  barrier();
#if !FKV_SUBGROUP_ADD
  const uint tid = gl_LocalInvocationID.x;
  for (uint h = WG / 2u; h > 0u; h >>= 1) {
    if (tid < h) {
      [[unroll]] for (uint r = 0u; r < MV_RED_ROWS; ++r) red[r * WG + tid] += red[r * WG + tid + h];
    }
    barrier();
  }
#endif
}

// Any subgroup size: the subgroups' sums are added in subgroup order.
float row_total(uint r) {
#if FKV_SUBGROUP_ADD
  float t = 0.0;
  for (uint i = 0u; i < gl_NumSubgroups; ++i) t += red[r * WG + i];
  return t;
#else
  return red[r * WG];
#endif
}
