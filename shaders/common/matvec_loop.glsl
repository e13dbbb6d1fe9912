// The decode matvec's loop over a row's slots (common/matvec_ops.glsl), included once per kind of
// workgroup. Before including, define MV_ACCUMULATE (the name of the function defined here), MV_NR (rows
// accumulated per thread) and MV_ROW_SLOT(r, s) (the raw data of slot s of accumulated row r, an
// MV_LOAD_SLOT call; it may use the parameters row0, last and rbytes); they are undefined at the end.
//
// MV_ACCUMULATE(row0, last, rbytes, slots, xb4, acc): acc[r] += this thread's part of the dot product of
// accumulated row r with x (at vec4 xb4 of x4), for rows of `slots` 8-value slots and rbytes bytes; the
// rows past `last` are clamped to it.
void MV_ACCUMULATE(uint row0, uint last, uint rbytes, uint slots, uint xb4, inout float acc[MV_NR]) {
  for (uint s0 = gl_LocalInvocationID.x; s0 < slots; s0 += WG * U) {
    vec4 xa[U], xb[U];
    float xs[U];
    uvec4 raw[MV_NR * U];
    [[unroll]] for (uint k = 0u; k < U; ++k) {
      const uint s = min(s0 + k * WG, slots - 1u);
      load_x(xb4, s, xa[k], xb[k]);
      [[unroll]] for (uint r = 0u; r < MV_NR; ++r) raw[r * U + k] = MV_ROW_SLOT(r, s);
    }
    [[unroll]] for (uint k = 0u; k < U; ++k) {
      prep_x(xa[k], xb[k], xs[k]);
      if (s0 + k * WG < slots) {
        [[unroll]] for (uint r = 0u; r < MV_NR; ++r) acc[r] += slot_dot(raw[r * U + k], xa[k], xb[k], xs[k]);
      }
    }
  }
}
#undef MV_ACCUMULATE
#undef MV_NR
#undef MV_ROW_SLOT
