// The decode matrix-vector product on GPUs: out[r] = sum_c W[r, c] * x[c] for one token.
// Included by matvec.comp (partial sums added in shared memory) and matvec_subgroup.comp (subgroupAdd, for
// devices with subgroup arithmetic in compute); the including file defines FKV_SUBGROUP_ADD to 0 or 1.
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
// The host uses this shader for F16 (cols % 8 == 0, 16-byte aligned rows), Q4_0 (either layout), Q4_1 and
// Q8_0 when x starts 16-byte aligned; everything else goes to matmul.comp.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if FKV_SUBGROUP_ADD
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint WTYPE = 1u;
layout(constant_id = 2) const uint WG = 128u;  // equals local_size_x; a power of two
layout(constant_id = 3) const uint R = 2u;     // rows per workgroup
layout(constant_id = 4) const uint U = 4u;     // slots per thread loaded together

layout(std430, binding = 0) readonly buffer Weights { uint w[]; };
layout(std430, binding = 0) readonly buffer Weights4 { uvec4 w4[]; };  // the same words, 16 bytes at a time
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Out { float o[]; };

// The layout of matmul.comp's push constants (n is always 1 here, out_stride unused).
layout(push_constant) uniform Params {
  uint rows;
  uint cols;
  uint n;
  uint w_base;  // byte offset of the first row in binding 0
  uint x_base;  // float offset of x in binding 1, a multiple of 4
  uint out_base;
  uint out_stride;
} p;

#include "common/grid.glsl"
#include "common/dequant.glsl"

shared float red[R * WG];

// The 4 bytes at even byte address b, with no read past the word that holds the last of them.
uint word_at(uint b) {
  const uint i = b >> 2;
  const uint lo = w[i], hi = w[i + ((b >> 1) & 1u)];
  return (b & 2u) == 0u ? lo : (lo >> 16) | (hi << 16);
}

// The 2 bytes at even byte address b, in the low half of the result (upper bits not cleared).
uint half_at(uint b) { return w[b >> 2] >> ((b & 2u) * 8u); }

// The nibble of h under mask m (one of 0xF, 0xF0, 0xF00, 0xF000: the nibble times 16^j) minus `bias`, as
// a float, exactly: the bits 0x4B000000 | v are the float 2^23 + v for v < 2^23, so a mask and a
// subtraction replace a shift and an integer-to-float conversion. The factor 16^j is taken out of the
// activations instead (prep_x), once per slot for all R rows.
float nib(uint h, uint m, float bias) { return uintBitsToFloat((h & m) | 0x4B000000u) - (8388608.0 + bias); }

// Raw data of one slot of one row: F16: the slot's 16 bytes; Q4_0 and Q4_0X8: (scale bits, nibble word);
// Q4_1: (scale and min bits, nibble word); Q8_0: (scale bits, bytes 0-3, bytes 4-7).
uvec4 load_slot(uint rb, uint s) {
  if (WTYPE == T_F16) return w4[(rb >> 4) + s];
  if (WTYPE == T_Q4_0X8) {
    // Slot s: run s / 32, block (s / 4) % 8 of it, quarter s % 4: nibble word 4 + s % 32 of the run; the
    // scale is half (s / 4) % 2 of scale word (s / 8) % 4. Rows start 16-byte aligned.
    const uint run = (rb >> 2) + (s >> 5) * 36u;
    return uvec4(w[run + ((s >> 3) & 3u)] >> ((s & 4u) << 2), w[run + 4u + (s & 31u)], 0u, 0u);
  }
  const uint blk = s >> 2, q = s & 3u;
  if (WTYPE == T_Q4_0) {
    const uint b = rb + blk * 18u;
    return uvec4(half_at(b), word_at(b + 2u + 4u * q), 0u, 0u);
  }
  if (WTYPE == T_Q4_1) {
    const uint b = rb + blk * 20u;  // rows of Q4_1 are whole words
    return uvec4(w[b >> 2], w[(b >> 2) + 1u + q], 0u, 0u);
  }
  const uint b = rb + blk * 34u;  // Q8_0
  return uvec4(half_at(b), word_at(b + 2u + 8u * q), word_at(b + 6u + 8u * q), 0u);
}

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

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row0 = linear_workgroup() * R;
  const uint slots = p.cols / 8u;  // F16: cols % 8 == 0; quantized: 4 slots per 32-value block
  const uint rbytes = row_bytes(p.cols);
  const uint xb4 = p.x_base / 4u;

  float acc[R];
  [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] = 0.0;
  for (uint s0 = tid; s0 < slots; s0 += WG * U) {
    vec4 xa[U], xb[U];
    float xs[U];
    uvec4 raw[R * U];
    [[unroll]] for (uint k = 0u; k < U; ++k) {
      const uint s = min(s0 + k * WG, slots - 1u);
      load_x(xb4, s, xa[k], xb[k]);
      [[unroll]] for (uint r = 0u; r < R; ++r)
        raw[r * U + k] = load_slot(p.w_base + min(row0 + r, p.rows - 1u) * rbytes, s);
    }
    [[unroll]] for (uint k = 0u; k < U; ++k) {
      prep_x(xa[k], xb[k], xs[k]);
      if (s0 + k * WG < slots) {
        [[unroll]] for (uint r = 0u; r < R; ++r) acc[r] += slot_dot(raw[r * U + k], xa[k], xb[k], xs[k]);
      }
    }
  }

#if FKV_SUBGROUP_ADD
  // One sum per subgroup and row, then the first R threads add the subgroups' sums (any subgroup size).
  [[unroll]] for (uint r = 0u; r < R; ++r) {
    const float s = subgroupAdd(acc[r]);
    if (subgroupElect()) red[r * WG + gl_SubgroupID] = s;
  }
  barrier();
  if (tid < R && row0 + tid < p.rows) {
    float t = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) t += red[tid * WG + i];
    o[p.out_base + row0 + tid] = t;
  }
#else
  [[unroll]] for (uint r = 0u; r < R; ++r) red[r * WG + tid] = acc[r];
  barrier();
  for (uint h = WG / 2u; h > 0u; h >>= 1) {
    if (tid < h) {
      [[unroll]] for (uint r = 0u; r < R; ++r) red[r * WG + tid] += red[r * WG + tid + h];
    }
    barrier();
  }
  if (tid < R && row0 + tid < p.rows) o[p.out_base + row0 + tid] = red[tid * WG];
#endif
}
