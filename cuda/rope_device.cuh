// RoPE's rotation of one adjacent pair (x[2k], x[2k+1]) as every CUDA kernel computes it (rope, rope_store
// and the q/k/v matvec with the rotation folded in), so that they agree bit for bit: the angle float(pos) *
// freq (the CPU's), accurate sincosf (full range reduction: positions reach tens of thousands of radians),
// and each product rounded as written, as the CPU computes it (no fused multiply-add that the compiler might
// place differently in different kernels).
#pragma once
#include <cuda_runtime.h>

namespace fkv::cuda {

__device__ __forceinline__ float2 rope_rotate(float a, float b, int pos, float freq) {
  const float angle = __fmul_rn(float(pos), freq);
  float s, c;
  sincosf(angle, &s, &c);
  return make_float2(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)),
                     __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)));
}

}  // namespace fkv::cuda
