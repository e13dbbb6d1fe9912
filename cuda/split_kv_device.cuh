// Device helpers shared by the split-cache kernels (split_kv_fourier.cu, split_attention.cu).
#pragma once
#include <cuda_fp16.h>

#include "split_kv.h"

namespace fkv::cuda::splitkv {

// Exact parts are f16 or fp32; values move through fp32.
__device__ __forceinline__ float load_val(const void* base, size_t i, bool f16) {
  return f16 ? __half2float(static_cast<const __half*>(base)[i]) : static_cast<const float*>(base)[i];
}
__device__ __forceinline__ void store_val(void* base, size_t i, bool f16, float x) {
  if (f16)
    static_cast<__half*>(base)[i] = __float2half_rn(x);
  else
    static_cast<float*>(base)[i] = x;
}
// What the cache holds for x (f16: round to nearest even, as the CPU's float_to_half).
__device__ __forceinline__ float round_to(bool f16, float x) {
  return f16 ? __half2float(__float2half_rn(x)) : x;
}

// The dims table of a part (split_kv.h).
struct Dims {
  const int* t;
  int kvh, nk;
  __device__ int keep_offset(int g) const { return t[g]; }
  __device__ int comp_offset(int g) const { return t[kvh + 1 + g]; }
  __device__ int keep(int i) const { return t[2 * (kvh + 1) + i]; }
  __device__ int comp(int i) const { return t[2 * (kvh + 1) + nk + i]; }
};

// The head g with off[g] <= i < off[g + 1] (offsets ascending, off[0] = 0, i < off[kvh]).
__device__ __forceinline__ int head_of(const int* off, int kvh, int i) {
  int g = 0;
  while (g + 1 < kvh && off[g + 1] <= i) ++g;
  return g;
}

// The range normalisation's affine map x̂ = a·x̃ + b of compressed dim c (RangeNorm::a(), b()).
__device__ __forceinline__ float2 norm_ab(const float* norm, int c) {
  const float* nm = norm + size_t(c) * kSplitNormStride;
  const float a = nm[3] > 0 ? nm[1] / nm[3] : 0.0f;
  return make_float2(a, nm[0] - a * nm[2]);
}

}  // namespace fkv::cuda::splitkv
