// The softmax statistics of one head's scores, by one warp: the scores of a span sit in shared memory as
// [row][head] (`stride` floats a row), the warp takes column `col` of rows 0 .. rows-1, replaces each score s
// by exp(s - m) (the weights of the V pass) and returns (m, sum of the weights), m the column's max, in every
// lane. Used by the full-cache decode kernel (attention_decode_kernels.cuh) and the split-cache one
// (split_attention_kernels.cuh). Host emulation (tests/cuda): the including file provides __shfl_xor_sync.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

namespace fkv::cuda {

__device__ __forceinline__ float2 warp_softmax_column(float* scores, int rows, int stride, int col, int lane) {
  float m = -INFINITY;
  for (int t = lane; t < rows; t += 32) m = fmaxf(m, scores[t * stride + col]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float sum = 0.0f;
  for (int t = lane; t < rows; t += 32) {
    const float p = expf(scores[t * stride + col] - m);
    scores[t * stride + col] = p;
    sum += p;
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  return make_float2(m, sum);
}

}  // namespace fkv::cuda
