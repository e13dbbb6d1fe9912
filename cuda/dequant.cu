// Decoding whole weight rows on the device: to f16/fp32 scratch for the prefill GEMM, and to fp32 rows of
// activations for the embedding lookup. A thread decodes 4 values of a unit (quantized) or one value (dense).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "model/quant.h"
#include "quant_device.cuh"

namespace fkv::cuda {
namespace {

__device__ __forceinline__ void put(float v, float* dst) { *dst = v; }
__device__ __forceinline__ void put(float v, __half* dst) { *dst = __float2half_rn(v); }

__device__ __forceinline__ float dense_value(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float dense_value(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float dense_value(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }

__device__ __forceinline__ void put4(const float* v, float* dst) {
  *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void put4(const float* v, __half* dst) {
  const __half2 a = __floats2half2_rn(v[0], v[1]), b = __floats2half2_rn(v[2], v[3]);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&a);
  u.y = *reinterpret_cast<const uint32_t*>(&b);
  *reinterpret_cast<uint2*>(dst) = u;
}

// dst row i = decoded source row ids[i] (or row0 + i when ids is null); a negative or too large id gives a
// NaN row. A thread decodes 4 values (a quad): 8 adjacent threads share a unit, so that both the block reads
// and the 8- or 16-byte stores of a warp are contiguous.
template <class F, class D>
__global__ void dequant_quant_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t row0,
                                     const int32_t* __restrict__ ids, int64_t n_rows, int64_t units,
                                     size_t row_bytes, D* __restrict__ dst) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_rows * units * 8) return;
  const int p = int(idx & 7);
  const int64_t iu = idx >> 3, i = iu / units, u = iu % units;
  const int64_t src = ids ? int64_t(ids[i]) : row0 + i;
  float v[4];
  if (src < 0 || src >= rows) {
    v[0] = v[1] = v[2] = v[3] = NAN;
  } else {
    Quad q;
    F::load4(w + size_t(src) * row_bytes, int(u), p, q);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = fmaf(q.a, q.q[k], q.b);
  }
  put4(v, dst + i * units * 32 + u * 32 + 4 * p);
}

template <class T, class D>
__global__ void dequant_dense_kernel(const T* __restrict__ w, int64_t rows, int64_t row0,
                                     const int32_t* __restrict__ ids, int64_t n_rows, int64_t cols,
                                     D* __restrict__ dst) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n_rows * cols) return;
  const int64_t i = idx / cols, c = idx % cols;
  const int64_t src = ids ? int64_t(ids[i]) : row0 + i;
  put(src < 0 || src >= rows ? NAN : dense_value(w + src * cols, c), dst + idx);
}

__global__ void to_half_kernel(const float* __restrict__ src, int64_t count, __half* __restrict__ dst) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) dst[i] = __float2half_rn(src[i]);
}

unsigned blocks_for(int64_t items) { return unsigned((items + 255) / 256); }

template <class F, class D>
void run_quant(const void* w, int64_t rows, int64_t row0, const int32_t* ids, int64_t n_rows, int64_t cols, D* dst,
               cudaStream_t st) {
  const int64_t units = cols / 32;
  const size_t row_bytes = size_t(cols / (32 * F::kUnitsPerBlock)) * F::kBlockBytes;
  dequant_quant_kernel<F, D><<<blocks_for(n_rows * units * 8), 256, 0, st>>>(static_cast<const uint8_t*>(w), rows, row0,
                                                                          ids, n_rows, units, row_bytes, dst);
  check_launch("dequant_quant");
}

template <class T, class D>
void run_dense(const void* w, int64_t rows, int64_t row0, const int32_t* ids, int64_t n_rows, int64_t cols, D* dst,
               cudaStream_t st) {
  dequant_dense_kernel<T, D><<<blocks_for(n_rows * cols), 256, 0, st>>>(static_cast<const T*>(w), rows, row0, ids,
                                                                         n_rows, cols, dst);
  check_launch("dequant_dense");
}

template <class D>
void decode(GgmlType type, WeightLayout layout, const void* w, int64_t rows, int64_t row0, const int32_t* ids,
            int64_t n_rows, int64_t cols, D* dst, cudaStream_t st) {
  if (n_rows == 0) return;
  if (layout == WeightLayout::kQ4_0x8) return run_quant<Q4_0x8>(w, rows, row0, ids, n_rows, cols, dst, st);
  switch (type) {
    case GgmlType::F32: return run_dense<float>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::F16: return run_dense<__half>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::BF16: return run_dense<__nv_bfloat16>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::Q4_0: return run_quant<Q4_0>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::Q4_1: return run_quant<Q4_1>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::Q8_0: return run_quant<Q8_0>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::Q4_K: return run_quant<Q4_K>(w, rows, row0, ids, n_rows, cols, dst, st);
    case GgmlType::Q6_K: return run_quant<Q6_K>(w, rows, row0, ids, n_rows, cols, dst, st);
  }
  throw Error(ErrorCode::kUnsupported, "CUDA dequantize: unsupported weight type " + type_name(uint32_t(type)));
}

}  // namespace

WeightLayout upload_layout(GgmlType type, int64_t cols) {
  return q4_0x8_applies(type, cols) ? WeightLayout::kQ4_0x8 : WeightLayout::kGguf;
}

void dequantize_rows(GgmlType type, WeightLayout layout, const void* w, int64_t row0, int64_t n_rows, int64_t cols,
                     void* dst, bool half_out, cudaStream_t st) {
  const int64_t rows = row0 + n_rows;
  if (half_out)
    decode(type, layout, w, rows, row0, nullptr, n_rows, cols, static_cast<__half*>(dst), st);
  else
    decode(type, layout, w, rows, row0, nullptr, n_rows, cols, static_cast<float*>(dst), st);
}

void embed(GgmlType type, WeightLayout layout, const void* table, int64_t rows, int64_t cols, const int32_t* ids,
           int n, float* out, cudaStream_t st) {
  decode(type, layout, table, rows, 0, ids, n, cols, out, st);
}

void to_half(const float* src, int64_t count, void* dst, cudaStream_t st) {
  if (count == 0) return;
  to_half_kernel<<<blocks_for(count), 256, 0, st>>>(src, count, static_cast<__half*>(dst));
  check_launch("to_half");
}

}  // namespace fkv::cuda
