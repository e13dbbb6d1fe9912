// The small ops of a layer: RMSNorm, RoPE, SwiGLU, residual add and the KV-cache store. Each reads and
// writes its tensors once; they are cheap next to the matmuls but are many launches per token, which the
// decode graph (decode_graph.cpp) removes.
#include <cuda_fp16.h>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "pdl.cuh"
#include "rope_device.cuh"

namespace fkv::cuda {
namespace {

constexpr int kNormThreads = 256;

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread.
__device__ __forceinline__ float block_sum(float s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __shared__ float partial[32];
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < int(blockDim.x >> 5); ++i) total += partial[i];
  return total;
}

// One block per row: sum of squares through warp shuffles and shared memory, then the scaled write.
__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, int dim, float eps,
                                float* __restrict__ out) {
  pdl_allow_dependents();  // the next matvec may start loading its weights
  const float* xi = x + size_t(blockIdx.x) * dim;
  float* oi = out + size_t(blockIdx.x) * dim;
  float s = 0.0f;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) s = fmaf(xi[j], xi[j], s);
  const float scale = 1.0f / sqrtf(block_sum(s) / float(dim) + eps);
  for (int j = threadIdx.x; j < dim; j += blockDim.x) oi[j] = xi[j] * scale * w[j];
}

// Rows of a multiple of 4 values, at most kPer float4 per thread, one block per row: every load of the row is
// issued before the reduction and the row stays in registers for the write. A decode step is one row, so
// its time is the latency of one round of loads, not of dim / blockDim dependent ones (15 us -> a few us at
// dim 4096). kAdd: the row is a + b, written to sum_out (which may alias a or b) before the norm: the residual
// add and the next RMSNorm in one launch, with the rounding of add then norm.
template <int kPer, bool kAdd>
__global__ void rms_norm_vec_kernel(const float* a, const float* b, float* sum_out, const float* __restrict__ w,
                                    int dim, float eps, float* __restrict__ out) {
  pdl_allow_dependents();  // the next matvec may start loading its weights
  pdl_wait();              // launched programmatically (the chain): the matvec that wrote a or b must be done
  const int d4 = dim / 4;
  const size_t row = size_t(blockIdx.x) * dim;
  const float4* a4 = reinterpret_cast<const float4*>(a + row);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float4* o4 = reinterpret_cast<float4*>(out + row);
  float4 v[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int j = threadIdx.x + k * blockDim.x;
    v[k] = j < d4 ? a4[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (kAdd && j < d4) {
      const float4 y = reinterpret_cast<const float4*>(b + row)[j];
      v[k] = make_float4(v[k].x + y.x, v[k].y + y.y, v[k].z + y.z, v[k].w + y.w);
    }
  }
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int j = threadIdx.x + k * blockDim.x;
    if (kAdd && j < d4) reinterpret_cast<float4*>(sum_out + row)[j] = v[k];
    s += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  const float scale = 1.0f / sqrtf(block_sum(s) / float(dim) + eps);
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int j = threadIdx.x + k * blockDim.x;
    if (j < d4) {
      const float4 g = w4[j];
      o4[j] = make_float4(v[k].x * scale * g.x, v[k].y * scale * g.y, v[k].z * scale * g.z, v[k].w * scale * g.w);
    }
  }
}

// One launch of rms_norm_vec_kernel for n rows of dim values; false when dim or the alignment does not suit it.
template <bool kAdd>
bool launch_norm_vec(const float* a, const float* b, float* sum_out, const float* w, int n, int dim, float eps,
                     float* out, cudaStream_t st) {
  constexpr int kThreads = 1024;
  const int per = (dim / 4 + kThreads - 1) / kThreads;
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (dim % 4 != 0 || per > 4 || !aligned(a) || !aligned(w) || !aligned(out) ||
      (kAdd && (!aligned(b) || !aligned(sum_out))))
    return false;
  const auto kernel = per <= 1 ? rms_norm_vec_kernel<1, kAdd> : per <= 2 ? rms_norm_vec_kernel<2, kAdd>
                                                                          : rms_norm_vec_kernel<4, kAdd>;
  launch_programmatic(kernel, kAdd ? "add_rms_norm" : "rms_norm", dim3(unsigned(n)), dim3(kThreads), st, true, a,
                      b, sum_out, w, dim, eps, out);
  return true;
}

__device__ __forceinline__ float2 rotate(float2 ab, int pos, float freq) {
  return rope_rotate(ab.x, ab.y, pos, freq);
}

// A decode step's RoPE of q and k and the cache store of k and v, in one launch: a thread per pair of q, of
// k (rotated in place and stored) and of v (stored). Same results as rope, rope, kv_store, kv_store.
__global__ void rope_store_kernel(float* __restrict__ q, int q_pairs, float* __restrict__ k,
                                  const float* __restrict__ v, int kv_pairs, int half_dim, int pos0,
                                  const int* __restrict__ pos0_dev, const float* __restrict__ freqs, bool f16,
                                  void* __restrict__ k_cache, void* __restrict__ v_cache) {
  const int idx = int(blockIdx.x * blockDim.x + threadIdx.x);
  const int pos = pos0_dev ? *pos0_dev : pos0;
  const int64_t row = int64_t(pos) * (2 * kv_pairs);
  float2 val;
  void* cache;
  int pair;
  if (idx < q_pairs) {
    float2* p = reinterpret_cast<float2*>(q) + idx;
    *p = rotate(*p, pos, freqs[idx % half_dim]);
    return;
  } else if (idx < q_pairs + kv_pairs) {
    pair = idx - q_pairs;
    float2* p = reinterpret_cast<float2*>(k) + pair;
    val = rotate(*p, pos, freqs[pair % half_dim]);
    *p = val;
    cache = k_cache;
  } else if (idx < q_pairs + 2 * kv_pairs) {
    pair = idx - q_pairs - kv_pairs;
    val = reinterpret_cast<const float2*>(v)[pair];
    cache = v_cache;
  } else {
    return;
  }
  if (f16)
    reinterpret_cast<__half2*>(static_cast<__half*>(cache) + row)[pair] = __floats2half2_rn(val.x, val.y);
  else
    reinterpret_cast<float2*>(static_cast<float*>(cache) + row)[pair] = val;
}

// One thread per (token, head, pair), rotated as the CPU does (rope_device.cuh).
__global__ void rope_kernel(float* __restrict__ x, int n, int n_heads, int head_dim, int pos0,
                            const int* __restrict__ pos0_dev, const float* __restrict__ freqs) {
  const int pairs = head_dim / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(n) * n_heads * pairs) return;
  const int k = int(idx % pairs);
  const int64_t th = idx / pairs;  // token * n_heads + head
  const int i = int(th / n_heads);
  const int p0 = pos0_dev ? *pos0_dev : pos0;
  float2* v = reinterpret_cast<float2*>(x + th * head_dim) + k;
  *v = rotate(*v, p0 + i, freqs[k]);
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t count, float* out) {
  pdl_allow_dependents();  // the next matvec may start loading its weights
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  out[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void add_kernel(const float* a, const float* b, int64_t count, float* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] + b[i];
}

__global__ void kv_store_kernel(const float* __restrict__ src, int64_t count, int64_t row_len, int pos0,
                                const int* __restrict__ pos0_dev, bool f16, void* __restrict__ cache) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int64_t dst = int64_t(pos0_dev ? *pos0_dev : pos0) * row_len + i;
  if (f16)
    static_cast<__half*>(cache)[dst] = __float2half_rn(src[i]);
  else
    static_cast<float*>(cache)[dst] = src[i];
}

unsigned blocks_for(int64_t items) { return unsigned((items + 255) / 256); }

}  // namespace

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out, cudaStream_t st) {
  if (n == 0) return;
  if (launch_norm_vec<false>(x, nullptr, nullptr, w, n, dim, eps, out, st)) return;
  rms_norm_kernel<<<n, kNormThreads, 0, st>>>(x, w, dim, eps, out);
  check_launch("rms_norm");
}

bool add_rms_norm(const float* a, const float* b, float* sum_out, const float* w, int dim, float eps, float* out,
                  cudaStream_t st) {
  return launch_norm_vec<true>(a, b, sum_out, w, 1, dim, eps, out, st);
}

void rope_store(float* q, int q_heads, float* k, const float* v, int kv_heads, int head_dim, int pos0,
                const int* pos0_dev, const float* freqs, bool f16, void* k_cache, void* v_cache, cudaStream_t st) {
  const int half = head_dim / 2, q_pairs = q_heads * half, kv_pairs = kv_heads * half;
  const int items = q_pairs + 2 * kv_pairs;
  if (items == 0) return;
  rope_store_kernel<<<blocks_for(items), 256, 0, st>>>(q, q_pairs, k, v, kv_pairs, half, pos0, pos0_dev, freqs, f16,
                                                        k_cache, v_cache);
  check_launch("rope_store");
}

void rope(float* x, int n, int n_heads, int head_dim, int pos0, const int* pos0_dev, const float* freqs,
          cudaStream_t st) {
  const int64_t items = int64_t(n) * n_heads * (head_dim / 2);
  if (items == 0) return;
  rope_kernel<<<blocks_for(items), 256, 0, st>>>(x, n, n_heads, head_dim, pos0, pos0_dev, freqs);
  check_launch("rope");
}

void swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t st) {
  if (count == 0) return;
  swiglu_kernel<<<blocks_for(count), 256, 0, st>>>(gate, up, count, out);
  check_launch("swiglu");
}

void add(const float* a, const float* b, int64_t count, float* out, cudaStream_t st) {
  if (count == 0) return;
  add_kernel<<<blocks_for(count), 256, 0, st>>>(a, b, count, out);
  check_launch("add");
}

void kv_store(const float* src, int n, int64_t row_len, int pos0, const int* pos0_dev, bool f16, void* cache,
              cudaStream_t st) {
  const int64_t count = int64_t(n) * row_len;
  if (count == 0) return;
  kv_store_kernel<<<blocks_for(count), 256, 0, st>>>(src, count, row_len, pos0, pos0_dev, f16, cache);
  check_launch("kv_store");
}

}  // namespace fkv::cuda
