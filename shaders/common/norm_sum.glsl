// The RMSNorm's sum of squares, added up by many workgroups (the norm fold: vulkan_backend.cpp "norm
// fold"). The decode matvec that ends a residual add (matvec_add_norm.comp) adds the squares of the rows it
// wrote into an accumulator slot; the matvecs that read the normed row (matvec_fused.glsl NORM_SCALE) and
// norm_scale.comp turn the slot into the norm's scale 1 / sqrt(sum / dim + eps).
//
// Each slot is two 64-bit fixed-point totals, added with integer atomics, so the total does not depend on
// the order in which workgroups finish (float atomics would make every run's logits differ in the last
// bits): fine = sum of round(part * 2^32), exact to 2^-33 a part, for totals below 2^30 (it holds up to
// 2^32); coarse = sum of round(part * 2^12), for totals up to ~10^15. With a few thousand parts the total is
// off by < 10^-6 absolute (fine) or a relative 10^-9 (coarse): far below the norm's eps and fp32 rounding.
// (Spreading the parts over 8 copies of the slot, fewer atomics on one address, was slower on an H100.)
// To add, the includer declares `NORM_SUM` (uint64_t[], slot s at 2s and 2s + 1), enables
// GL_EXT_shader_explicit_arithmetic_types_int64 and GL_EXT_shader_atomic_int64 and defines
// FKV_NORM_SUM_ADD; to read, `NORM_SUM2`, the same words as uvec2[] (low word first), so that readers need
// no 64-bit types.

const float kNormFine = 4294967296.0;  // 2^32
const float kNormCoarse = 4096.0;      // 2^12

#ifdef FKV_NORM_SUM_ADD
// Adds one workgroup's part (>= 0) of the sum of squares to slot s.
void norm_sum_add(uint s, float part) {
  atomicAdd(NORM_SUM[2u * s], uint64_t(min(part, 2147483648.0) * kNormFine));
  atomicAdd(NORM_SUM[2u * s + 1u], uint64_t(part * kNormCoarse));
}
#endif

#ifdef NORM_SUM2
// The slot's words, loaded early (norm_sum_load) and used at the end (norm_sum_scale): no wait on them
// before the work.
uvec2 norm_fine, norm_coarse;
void norm_sum_load(uint s) {
  norm_fine = NORM_SUM2[2u * s];
  norm_coarse = NORM_SUM2[2u * s + 1u];
}

float norm_sum_word(uvec2 v) { return float(v.y) * 4294967296.0 + float(v.x); }

// The norm's scale from the loaded slot: 1 / sqrt(sum / dim + eps), as rms_norm.glsl computes it from its
// sum.
float norm_sum_scale(uint dim, float eps) {
  const float coarse = norm_sum_word(norm_coarse) / kNormCoarse;
  const float sum = coarse >= 1073741824.0 ? coarse : norm_sum_word(norm_fine) / kNormFine;
  return 1.0 / sqrt(sum / float(dim) + eps);
}
#endif
