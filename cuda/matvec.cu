// Decode matvec: out[r] = W[r, :] . x for one token. Memory-bandwidth bound, so every kernel here is about
// streaming the weights once with wide, coalesced loads and enough loads in flight, with fp32 accumulation.
//
// Layout: a block is (32 * warps_per_row) x rows_per_block threads; the warps of a row split its columns
// and reduce through shared memory. Small matrices get more warps per row so that the grid still fills the
// GPU (bytes in flight, not arithmetic, set the speed).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <cstdlib>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "pdl.cuh"
#include "quant_device.cuh"
#include "rope_device.cuh"

namespace fkv::cuda {
namespace {

constexpr int kBlockThreads = 256;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// SwiGLU of one pair, as cuda::swiglu computes it.
__device__ __forceinline__ float silu_times(float gate, float up) { return gate / (1.0f + expf(-gate)) * up; }

// Adds the partial sums of a row's warps and writes the row's result to *dst (none when dst is null).
__device__ __forceinline__ void finish_row(float acc, float* dst) {
  __shared__ float partial[kBlockThreads / 32];
  acc = warp_sum(acc);
  const int warps_per_row = blockDim.x >> 5;
  if (warps_per_row == 1) {
    if (threadIdx.x == 0 && dst) *dst = acc;
    return;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) partial[threadIdx.y * warps_per_row + warp] = acc;
  __syncthreads();
  if (threadIdx.x == 0 && dst) {
    float s = 0.0f;
    for (int i = 0; i < warps_per_row; ++i) s += partial[threadIdx.y * warps_per_row + i];
    *dst = s;
  }
}
__device__ __forceinline__ void finish_row(float acc, int64_t row, int64_t rows, float* out) {
  finish_row(acc, row < rows ? out + row : nullptr);
}

// Up to three matrices with the same x and row length run as one grid (the q, k and v projections, gate
// and up): global rows [end[m-1], end[m]) are matrix m's rows. Unused slots repeat the last end.
// gated: the SwiGLU of a gate/up pair folded in: w[0] gate, w[1] up, end[0] = rows of each (pairs), end[1] =
// end[2] = twice that; a pair's result silu(gate)·up goes to out[0], and up alone to out[1] (as unfused).
struct Targets {
  const void* w[3];
  float* out[3];
  int64_t end[3];
  bool gated;
  // The kernel lets the next one launch at its beginning (pdl.cuh, the programmatic chain).
  bool early_dependents = false;
};
// t for a launch of the Q4_0x8 matvec: early_dependents as the programmatic chain says. The F16/BF16
// kernels never set it: letting dependents launch at their beginning, or once their warps were done, made
// 8B-shape F16 decode slower on an H100 (at their beginning 137-141 t/s against 162-163 without; once
// their warps were done 158-160 against 164-166; the q/k/v launch alone at its beginning 163-164 against
// 168; one call each).
Targets chained_q4(Targets t) {
  t.early_dependents = programmatic_chain();
  return t;
}
__device__ __forceinline__ int target_of(const Targets& t, int64_t row) {
  return int(row >= t.end[0]) + int(row >= t.end[1]);
}
// Targets' fields by a matrix index known only at run time, as selects: indexing the kernel parameter's
// arrays with it (t.w[m]) made every thread copy the whole struct to local memory at its start (an 80-byte
// stack frame), which cost the persistent F16 matvec 2-4 us a launch on an H100 (16.8 -> 15.5 us for
// 4096 x 4096, 45.7 -> 42.0 for 14336 x 4096, 349.8 -> 341.8 for the 128256-row output matrix; docs/CUDA.md).
__device__ __forceinline__ int64_t local_row(const Targets& t, int m, int64_t row) {
  return m == 0 ? row : m == 1 ? row - t.end[0] : row - t.end[1];
}
__device__ __forceinline__ const void* weights_of(const Targets& t, int m) {
  return m == 0 ? t.w[0] : m == 1 ? t.w[1] : t.w[2];
}
__device__ __forceinline__ float* out_of(const Targets& t, int m) {
  return m == 0 ? t.out[0] : m == 1 ? t.out[1] : t.out[2];
}

// The RoPE of q and k and the cache store of k and v folded into a decode step's q/k/v matvec
// (matvec_qkv_rope): Targets' matrices 0, 1, 2 are q, k and v, whose row counts are multiples of the head
// dimension, and a warp that holds rows (2j, 2j+1) of one matrix (j a pair of a head) writes them as rope,
// rope, kv_store, kv_store leave them: q and k rotated (pair j % half_dim of the head), k and v also in cache
// row pos (f16 rounded to nearest even, or fp32; a row holds k's row count of values). Kernels without it get
// an unused one.
struct RopeFold {
  const float* freqs;  // [half_dim], rope_frequency()
  const int* pos_dev;  // the decode graph's position scalar, or null: pos
  void* k_cache;
  void* v_cache;
  int pos, half_dim;
  bool f16;
};
// Rows (local, local + 1) of matrix m (local even) with values (a, b): rotated (q, k), stored (k, v).
__device__ __forceinline__ void store_rope_pair(const Targets& t, const RopeFold& rf, int m, int64_t local,
                                                float a, float b) {
  const int pos = rf.pos_dev ? *rf.pos_dev : rf.pos;
  const float2 v =
      m < 2 ? rope_rotate(a, b, pos, rf.freqs[int(local >> 1) % rf.half_dim]) : make_float2(a, b);
  out_of(t, m)[local] = v.x;
  out_of(t, m)[local + 1] = v.y;
  if (m == 0) return;
  const int64_t at = int64_t(pos) * (t.end[1] - t.end[0]) + local;
  void* cache = m == 1 ? rf.k_cache : rf.v_cache;
  if (rf.f16)
    *reinterpret_cast<__half2*>(static_cast<__half*>(cache) + at) = __floats2half2_rn(v.x, v.y);
  else
    *reinterpret_cast<float2*>(static_cast<float*>(cache) + at) = v;
}

// x of a matvec launched programmatically (pdl.cuh) is written by the previous kernel while this one already
// runs, so it is not read-only for this kernel's lifetime: never through the non-coherent path (__ldg or
// ld.global.nc, which a const __restrict__ pointer allows). On an H100, Q4_0x8 x read by __ldg gave wrong
// decode steps once replayed with programmatic launches (DecodeGraphTest, dim 1024).
__device__ __forceinline__ float4 load_x(const float4* p) { return __ldca(p); }

// 8 values of a 16-byte chunk as fp32.
__device__ __forceinline__ void widen8(const uint4& c, const __half*, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&c);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __half22float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}
__device__ __forceinline__ void widen8(const uint4& c, const __nv_bfloat16*, float* f) {
  const uint32_t w[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// F16 / BF16 rows whose length is a multiple of 8: each thread streams 16-byte chunks (8 values) with
// kUnroll chunks in flight per iteration; x is read as float4 (it stays in L1/L2: every row reads it).
template <class T>
__device__ __forceinline__ float dot8(const uint4& c, const float4* x4, int64_t chunk, float acc) {
  float f[8];
  widen8(c, static_cast<const T*>(nullptr), f);
  const float4 x0 = load_x(x4 + 2 * chunk), x1 = load_x(x4 + 2 * chunk + 1);
  acc = fmaf(f[0], x0.x, acc); acc = fmaf(f[1], x0.y, acc); acc = fmaf(f[2], x0.z, acc);
  acc = fmaf(f[3], x0.w, acc); acc = fmaf(f[4], x1.x, acc); acc = fmaf(f[5], x1.y, acc);
  acc = fmaf(f[6], x1.z, acc); acc = fmaf(f[7], x1.w, acc);
  return acc;
}

template <class T, int kUnroll, bool kPipe>
__global__ void matvec_half_kernel(Targets t, int64_t cols, const float* __restrict__ x) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool live = row < t.end[2];
  const int m = target_of(t, row);
  const int64_t local = local_row(t, m, row);
  float acc = 0.0f;
  if (live) {
    const uint4* wr = reinterpret_cast<const uint4*>(static_cast<const T*>(weights_of(t, m)) + local * cols);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int64_t chunks = cols / 8;
    int64_t c = threadIdx.x;
    const int stride = blockDim.x;
    // The first weights are loaded before waiting for the kernel that writes x (programmatic launch).
    uint4 a[kUnroll];
    bool full = c + (kUnroll - 1) * stride < chunks;
    if (full)
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) a[k] = __ldcs(wr + c + k * stride);  // weights: streamed, read once
    pdl_wait();
    while (full) {
      // kPipe: the next pass's weights are requested before this pass is used, so that a warp always has
      // a pass in flight (twice the bytes in flight, no gap between passes).
      const int64_t cn = c + kUnroll * stride;
      const bool next_full = cn + (kUnroll - 1) * stride < chunks;
      uint4 b[kUnroll];
      if (kPipe && next_full)
#pragma unroll
        for (int k = 0; k < kUnroll; ++k) b[k] = __ldcs(wr + cn + k * stride);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) acc = dot8<T>(a[k], x4, c + k * stride, acc);
      if (!kPipe && next_full)
#pragma unroll
        for (int k = 0; k < kUnroll; ++k) b[k] = __ldcs(wr + cn + k * stride);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) a[k] = b[k];
      c = cn;
      full = next_full;
    }
    for (; c < chunks; c += stride) acc = dot8<T>(__ldcs(wr + c), x4, c, acc);
  } else {
    pdl_wait();
  }
  finish_row(acc, live ? out_of(t, m) + local : nullptr);
}

// A weight load of the persistent F16/BF16 matvec: read-only for the kernel's life (the non-coherent path),
// not kept in L1, and L2 asked to fetch the whole 256-byte block (the warp reads all of it). Alone in a
// loop on an H100: 82.7 against 85.7 us for the 8B gate/up pair, 347 against 359 for the output matrix.
__device__ __forceinline__ uint4 load_weights_256(const uint4* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
#else
  return __ldcs(p);
#endif
}

// F16 / BF16 rows whose length is a multiple of 1024, persistent: the grid is one wave of warps and warp w
// takes rows w, w + W, w + 2W ... as one stream of passes (a pass: 4 chunks of 16 bytes per lane, 512
// contiguous bytes per load instruction), the next pass always requested before the current one is used,
// across row ends too. No block retires and relaunches mid-matrix, no partial last wave, and every warp
// keeps two passes in flight for the whole matrix.
// kRope: a unit is a row pair (2u, 2u + 1) of the q/k/v rows, written through store_rope_pair (RopeFold).
template <class T, bool kRope>
__global__ void __launch_bounds__(kBlockThreads)
    matvec_half_stream_kernel(Targets t, int cols, const float* __restrict__ x, RopeFold rf) {
  constexpr int kUnroll = 4, kPassChunks = 32 * kUnroll;
  const int lane = threadIdx.x & 31;
  const int warp = int((int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5);
  const int warps = int((int64_t(gridDim.x) * blockDim.x) >> 5);
  // A unit is one row, or (gated) a gate row then its up row, or (kRope) a row pair.
  const int sub = kRope || t.gated ? 2 : 1;
  const int units = kRope ? int(t.end[2] / 2) : t.gated ? int(t.end[0]) : int(t.end[2]);
  const int per_row = cols / (8 * kPassChunks);
  const int my_units = units > warp ? (units - warp + warps - 1) / warps : 0;
  const int passes = my_units * sub * per_row;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  auto row_ptr = [&](int unit, int part) {
    const void* w;
    int64_t local;
    if (kRope) {
      const int row = 2 * unit + part, m = target_of(t, row);
      w = weights_of(t, m);
      local = local_row(t, m, row);
    } else if (t.gated) {
      w = weights_of(t, part);
      local = unit;
    } else {
      const int m = target_of(t, unit);
      w = weights_of(t, m);
      local = local_row(t, m, unit);
    }
    return reinterpret_cast<const uint4*>(static_cast<const T*>(w) + local * cols);
  };
  uint4 a[kUnroll];
  int unit = warp, part = 0, q = 0;  // current pass: unit, row within the unit, pass within the row
  const uint4* wr = passes > 0 ? row_ptr(unit, 0) : nullptr;
  if (passes > 0)
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) a[k] = load_weights_256(wr + lane + 32 * k);
  pdl_wait();
  int nunit = unit, npart = part, nq = q;
  const uint4* nwr = wr;
  float acc = 0.0f, gate = 0.0f;
  for (int p = 0; p < passes; ++p) {
    // The next pass: same row, the unit's up row, or the first pass of this warp's next unit.
    if (++nq == per_row) {
      nq = 0;
      if (++npart == sub) {
        npart = 0;
        nunit += warps;
      }
      if (p + 1 < passes) nwr = row_ptr(nunit, npart);
    }
    uint4 b[kUnroll];
    if (p + 1 < passes)
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) b[k] = load_weights_256(nwr + nq * kPassChunks + lane + 32 * k);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) acc = dot8<T>(a[k], x4, q * kPassChunks + lane + 32 * k, acc);
    if (q == per_row - 1) {
      acc = warp_sum(acc);
      if constexpr (kRope) {
        if (part == 0) {
          gate = acc;  // the pair's first row
        } else if (lane == 0) {
          const int m = target_of(t, 2 * unit);
          store_rope_pair(t, rf, m, local_row(t, m, 2 * unit), gate, acc);
        }
      } else if (!t.gated) {
        if (lane == 0) {
          const int m = target_of(t, unit);
          out_of(t, m)[local_row(t, m, unit)] = acc;
        }
      } else if (part == 0) {
        gate = acc;
      } else if (lane == 0) {
        t.out[0][unit] = silu_times(gate, acc);
        t.out[1][unit] = acc;
      }
      acc = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) a[k] = b[k];
    unit = nunit;
    part = npart;
    q = nq;
  }
}

// F32 rows whose length is a multiple of 4: float4 chunks.
__global__ void matvec_f32_kernel(const float* __restrict__ w, int64_t rows, int64_t cols,
                                  const float* __restrict__ x, float* __restrict__ out) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  float acc = 0.0f;
  if (row < rows) {
    const float4* wr = reinterpret_cast<const float4*>(w + row * cols);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t c = threadIdx.x; c < cols / 4; c += blockDim.x) {
      const float4 a = __ldcs(wr + c), b = x4[c];
      acc = fmaf(a.x, b.x, acc);
      acc = fmaf(a.y, b.y, acc);
      acc = fmaf(a.z, b.z, acc);
      acc = fmaf(a.w, b.w, acc);
    }
  }
  finish_row(acc, row, rows, out);
}

__device__ __forceinline__ float scalar_value(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float scalar_value(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float scalar_value(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}

// Any row length (odd sizes): one value per thread and step.
template <class T>
__global__ void matvec_scalar_kernel(const T* __restrict__ w, int64_t rows, int64_t cols,
                                     const float* __restrict__ x, float* __restrict__ out) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  float acc = 0.0f;
  if (row < rows)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) acc = fmaf(scalar_value(w + row * cols, c), x[c], acc);
  finish_row(acc, row, rows, out);
}

// Quantized rows: 8 adjacent lanes share a 32-value unit, 4 values each, so that a warp reads 4 consecutive
// blocks and 512 contiguous bytes of x per pass (a lane per unit strided x by 128 bytes: L1-bound, about
// 0.5 TB/s on an H100). kUnroll passes are in flight per iteration to keep enough bytes outstanding.
template <class F>
__global__ void matvec_quant_kernel(const uint8_t* __restrict__ w, int64_t rows, int64_t units,
                                    size_t row_bytes, const float* __restrict__ x, float* __restrict__ out) {
  constexpr int kUnroll = 4;
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  float acc = 0.0f;
  if (row < rows) {
    const uint8_t* wr = w + size_t(row) * row_bytes;
    const int p = threadIdx.x & 7;
    const int stride = blockDim.x >> 3;  // units per pass of the row's lanes
    int64_t u = threadIdx.x >> 3;
    for (; u + (kUnroll - 1) * stride < units; u += kUnroll * stride) {
      Quad q[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) F::load4(wr, int(u + k * stride), p, q[k]);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) acc += quad_dot<F>(q[k], x + 32 * (u + k * stride) + 4 * p);
    }
    for (; u < units; u += stride) {
      Quad q;
      F::load4(wr, int(u), p, q);
      acc += quad_dot<F>(q, x + 32 * u + 4 * p);
    }
  }
  finish_row(acc, row, rows, out);
}

// Q4_0x8 rows (quant_device.cuh; a multiple of 256 values): a warp takes R rows and one run of 8 blocks per
// pass, lane = 4 * block + part, part p holding the run's nibble word 4p..4p+3 of its block (values 4p..4p+3
// and 16+4p..16+4p+3). Per pass and row the warp loads 128 contiguous bytes as aligned words plus the 16
// bytes of scales; its two float4 loads of x cover 1 KiB of x contiguously and serve all R rows. kUnroll
// passes are loaded before any is used, so that enough bytes are in flight to cover memory latency.
// Four blocks a multiprocessor (64 registers) for R <= 2: without the bound the compiler took 69 registers, so
// three blocks ran (ncu). H100, Q4_0 decode at depth 0, two runs each: 253.7 and 260.0 t/s with the bound,
// 254.2 and 253.7 without (an earlier call); a bound of one block (86 registers) ran at 240-244 and one of five
// blocks (48 registers, spills) at 213-215.
//
// kRope (R == 2, not gated): the warp's rows (row0, row0 + 1) are a pair, written through store_rope_pair.
template <int R, bool kPipe, bool kRope>
__global__ void __launch_bounds__(kBlockThreads, R <= 2 ? 4 : 1)
    matvec_q4_0x8_kernel(Targets t, int64_t runs, const float* __restrict__ x, RopeFold rf) {
  if (t.early_dependents) pdl_allow_dependents();
  static_assert(!kRope || R == 2, "the RoPE fold pairs a warp's two rows");
  constexpr int kUnroll = 4;
  __shared__ float partial[R][kBlockThreads / 32];
  const int64_t rows = t.end[2];
  const int64_t row0 = (int64_t(blockIdx.x) * blockDim.y + threadIdx.y) * R;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wpr = blockDim.x >> 5;
  const int blk = lane >> 2, part = lane & 3;
  const size_t row_bytes = size_t(runs) * Q4_0x8::kRunBytes;
  const uint8_t* wr[R];
  float* dst[R];  // null past the last row
  if (t.gated) {  // R == 2 (the host checks): row 0 of the warp is gate row g, row 1 up row g
    const int64_t g = row0 / R, pairs = t.end[0], gc = min(g, pairs - 1);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      wr[r] = static_cast<const uint8_t*>(weights_of(t, r & 1)) + size_t(gc) * row_bytes;
      dst[r] = g < pairs ? out_of(t, r & 1) + g : nullptr;
    }
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = min(row0 + r, rows - 1);  // clamped: no read past the end
      const int m = target_of(t, row);
      const int64_t local = local_row(t, m, row);
      wr[r] = static_cast<const uint8_t*>(weights_of(t, m)) + size_t(local) * row_bytes;
      dst[r] = row0 + r < rows ? out_of(t, m) + local : nullptr;
    }
  }
  const float4* x4 = reinterpret_cast<const float4*>(x) + 8 * blk + part;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;

  auto pass = [&](uint32_t q, float d, float4 xa, float4 xb, float& a) {
    float s = 0.0f;
    s = fmaf(small_uint_to_float(q & 15, 8.0f), xa.x, s);
    s = fmaf(small_uint_to_float((q >> 8) & 15, 8.0f), xa.y, s);
    s = fmaf(small_uint_to_float((q >> 16) & 15, 8.0f), xa.z, s);
    s = fmaf(small_uint_to_float((q >> 24) & 15, 8.0f), xa.w, s);
    s = fmaf(small_uint_to_float((q >> 4) & 15, 8.0f), xb.x, s);
    s = fmaf(small_uint_to_float((q >> 12) & 15, 8.0f), xb.y, s);
    s = fmaf(small_uint_to_float((q >> 20) & 15, 8.0f), xb.z, s);
    s = fmaf(small_uint_to_float(q >> 28, 8.0f), xb.w, s);
    a = fmaf(d, s, a);
  };

  bool waited = false;
  if (row0 < rows) {
    int64_t s = warp;
    uint32_t q[kUnroll][R];
    float d[kUnroll][R];
    auto load_pass = [&](int64_t s0, uint32_t (&qq)[kUnroll][R], float (&dd)[kUnroll][R]) {
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int64_t run = s0 + k * wpr;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const uint8_t* base = wr[r] + size_t(run) * Q4_0x8::kRunBytes;
          qq[k][r] = __ldcs(reinterpret_cast<const unsigned int*>(base + 16) + lane);
          dd[k][r] = __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(base) + blk)));
        }
      }
    };
    bool full = s + (kUnroll - 1) * wpr < runs;
    if (full) load_pass(s, q, d);
    while (full) {
      if (!waited) {  // the first weights are in flight before waiting for the kernel that writes x
        pdl_wait();
        waited = true;
      }
      // kPipe: the next pass's weights are requested before this pass is used (see matvec_half_kernel).
      const int64_t sn = s + kUnroll * wpr;
      const bool next_full = sn + (kUnroll - 1) * wpr < runs;
      uint32_t qn[kUnroll][R];
      float dn[kUnroll][R];
      if (kPipe && next_full) load_pass(sn, qn, dn);
      float4 xa[kUnroll], xb[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int64_t run = s + k * wpr;
        xa[k] = load_x(x4 + 64 * run);
        xb[k] = load_x(x4 + 64 * run + 4);
      }
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
#pragma unroll
        for (int r = 0; r < R; ++r) pass(q[k][r], d[k][r], xa[k], xb[k], acc[r]);
      if (!kPipe && next_full) load_pass(sn, qn, dn);
#pragma unroll
      for (int k = 0; k < kUnroll; ++k)
#pragma unroll
        for (int r = 0; r < R; ++r) {
          q[k][r] = qn[k][r];
          d[k][r] = dn[k][r];
        }
      s = sn;
      full = next_full;
    }
    if (!waited) {
      pdl_wait();
      waited = true;
    }
    for (; s < runs; s += wpr) {
      const float4 xa = load_x(x4 + 64 * s), xb = load_x(x4 + 64 * s + 4);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint8_t* base = wr[r] + size_t(s) * Q4_0x8::kRunBytes;
        const uint32_t q = __ldcs(reinterpret_cast<const unsigned int*>(base + 16) + lane);
        const float d = __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(base) + blk)));
        pass(q, d, xa, xb, acc[r]);
      }
    }
  }
  if (!waited) pdl_wait();  // rows past the end still order their (absent) writes after the wait
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = warp_sum(acc[r]);
  // The row sums (in lane 0 of warp 0 of the row's warps), stored.
  auto store = [&](const float(&total)[R]) {
    if constexpr (kRope) {
      if (dst[0]) {  // row0 + 1 is a row too: the matrices' row counts are even
        const int m = target_of(t, row0);
        store_rope_pair(t, rf, m, local_row(t, m, row0), total[0], total[R - 1]);
      }
    } else {
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (dst[r]) *dst[r] = t.gated && r == 0 ? silu_times(total[0], total[1]) : total[r];
    }
  };
  if (wpr == 1) {
    if (lane == 0) store(acc);
    return;
  }
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < R; ++r) partial[r][threadIdx.y * wpr + warp] = acc[r];
  __syncthreads();
  if (threadIdx.x == 0) {
    float total[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      total[r] = 0.0f;
      for (int i = 0; i < wpr; ++i) total[r] += partial[r][threadIdx.y * wpr + i];
    }
    store(total);
  }
}

// Chooses warps per row so that the grid has enough warps to keep memory busy, without giving a warp
// fewer than two work items per pass.
dim3 block_shape(int64_t rows, int64_t items_per_row, int sm_count) {
  const int64_t target_warps = int64_t(sm_count) * 48;
  int wpr = 1;
  while (wpr < 8 && rows * wpr < target_warps && items_per_row >= int64_t(64) * wpr * 2) wpr *= 2;
  return dim3(32 * wpr, kBlockThreads / (32 * wpr));
}

// Warps of `kernel` (blocks of kBlockThreads) that fit on the GPU at once, from the occupancy calculator;
// cached per kernel.
template <class K>
int64_t resident_warps(K kernel, int sm_count) {
  static std::mutex mu;
  static std::map<const void*, int> blocks_per_sm;
  std::lock_guard<std::mutex> lock(mu);
  const void* key = reinterpret_cast<const void*>(kernel);
  auto it = blocks_per_sm.find(key);
  if (it == blocks_per_sm.end()) {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kBlockThreads, 0) != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    it = blocks_per_sm.emplace(key, n).first;
  }
  return int64_t(it->second) * sm_count * (kBlockThreads / 32);
}

// Warps per row chosen so that a grid that fits on the GPU in one wave stays in one wave: a partial second
// wave of blocks ran the GPU a third full at the end of the 4096-row matrices. Measured (H200, 8B shape, one
// machine): Q4_0 decode 227.8 -> 246.4 t/s at depth 0, 164.8 -> 180.2 at 32K; F16 163.3 -> 166.4.
// FKV_CUDA_ONE_WAVE=0 gives the older rule (enough warps for 48 a multiprocessor).
bool one_wave() {
  static const bool on = [] {
    const char* v = std::getenv("FKV_CUDA_ONE_WAVE");
    return !(v && std::atoi(v) == 0);
  }();
  return on;
}

// block_shape, or with one_wave(): the most warps per row (up to 8, at least two work items per lane)
// whose grid still fits in `resident` warps.
dim3 wave_block_shape(int64_t rows, int64_t items_per_row, int sm_count, int64_t resident) {
  if (!one_wave() || resident <= 0) return block_shape(rows, items_per_row, sm_count);
  int wpr = 1;
  while (wpr < 8 && rows * (2 * wpr) <= resident && items_per_row >= int64_t(64) * (2 * wpr) * 2) wpr *= 2;
  return dim3(32 * wpr, kBlockThreads / (32 * wpr));
}

template <class K, class... Args>
void launch(K kernel, const char* name, int64_t rows, int64_t items_per_row, int sm_count, cudaStream_t stream,
            Args... args) {
  const dim3 block = block_shape(rows, items_per_row, sm_count);
  const int64_t grid = (rows + block.y - 1) / block.y;
  kernel<<<unsigned(grid), block, 0, stream>>>(args...);
  check_launch(name);
}

template <class F>
void matvec_quant(const void* w, int64_t rows, int64_t cols, const float* x, float* out, int sm, cudaStream_t st) {
  const int64_t units = cols / 32;
  const size_t row_bytes = size_t(cols / (32 * F::kUnitsPerBlock)) * F::kBlockBytes;
  launch(matvec_quant_kernel<F>, "matvec_quant", rows, units * 8, sm, st, static_cast<const uint8_t*>(w), rows, units,
         row_bytes, x, out);
}

// Rows per warp of the Q4_0x8 matvec: 2 unless FKV_CUDA_Q4_ROWS says 1 or 4 (a tuning knob, read once).
int q4_rows_per_warp() {
  static const int r = [] {
    const char* v = std::getenv("FKV_CUDA_Q4_ROWS");
    const int n = v ? std::atoi(v) : 2;
    return n == 1 || n == 4 ? n : 2;
  }();
  return r;
}

Targets one_target(const void* w, int64_t rows, float* out) {
  return Targets{{w, w, w}, {out, out, out}, {rows, rows, rows}, false};
}

// Whether a matvec requests a pass's weights before using the previous pass (software pipelining).
// FKV_CUDA_PIPE=0 / 1 forces it off / on for both kernels (a tuning knob, read once); by default the F16/BF16
// kernel pipelines and the Q4_0x8 one does not. Measured on an H100, 8B shape, depth 0 / 32K, same machine:
// F16 143.6 / 112.9 t/s pipelined against 141.8 / 110.3; Q4_0 231.6 / 157.4 against 256.6 / 168.0 (its
// nibble arithmetic keeps it near the issue limit, and the extra registers cost occupancy).
bool pipelined(bool by_default) {
  static const int forced = [] {
    const char* v = std::getenv("FKV_CUDA_PIPE");
    return v ? (std::atoi(v) != 0 ? 1 : 0) : -1;
  }();
  return forced < 0 ? by_default : forced == 1;
}

template <int R, bool kPipe, bool kRope = false>
void launch_q4_0x8(const Targets& t, int64_t cols, const float* x, int sm, cudaStream_t st,
                   const RopeFold& rf = RopeFold{}) {
  const int64_t rows = t.end[2], runs = cols / 256;
  const int64_t warp_rows = (rows + R - 1) / R;
  const auto kernel = matvec_q4_0x8_kernel<R, kPipe, kRope>;
  const dim3 block = wave_block_shape(warp_rows, runs * 32, sm, resident_warps(kernel, sm));
  const int64_t grid = (warp_rows + block.y - 1) / block.y;
  launch_programmatic(kernel, kRope ? "matvec_q4_0x8 (rope fold)" : "matvec_q4_0x8", dim3(unsigned(grid)),
                      block, st, false, chained_q4(t), runs, x, rf);
}

template <bool kPipe>
void matvec_q4_0x8_rows(const Targets& t, int64_t cols, const float* x, int sm, cudaStream_t st) {
  switch (q4_rows_per_warp()) {
    case 1: return launch_q4_0x8<1, kPipe>(t, cols, x, sm, st);
    case 4: return launch_q4_0x8<4, kPipe>(t, cols, x, sm, st);
    default: return launch_q4_0x8<2, kPipe>(t, cols, x, sm, st);
  }
}

void matvec_q4_0x8(const Targets& t, int64_t cols, const float* x, int sm, cudaStream_t st) {
  if (pipelined(false))
    matvec_q4_0x8_rows<true>(t, cols, x, sm, st);
  else
    matvec_q4_0x8_rows<false>(t, cols, x, sm, st);
}

// Chunks in flight per thread of the F16/BF16 matvec: 4 unless FKV_CUDA_HALF_UNROLL=2 (a tuning knob;
// measured on the H100, 8B-shape F16 decode: 129.2 t/s with 4, 123.0 with 2).
int half_unroll() {
  static const int u = [] {
    const char* v = std::getenv("FKV_CUDA_HALF_UNROLL");
    return v && std::atoi(v) == 2 ? 2 : 4;
  }();
  return u;
}

template <class T, int kUnroll, bool kPipe>
void launch_half(const Targets& t, int64_t cols, const float* x, int sm, cudaStream_t st) {
  const auto kernel = matvec_half_kernel<T, kUnroll, kPipe>;
  const dim3 block = wave_block_shape(t.end[2], cols / 8, sm, resident_warps(kernel, sm));
  const dim3 grid(unsigned((t.end[2] + block.y - 1) / block.y));
  launch_programmatic(kernel, "matvec_half", grid, block, st, false, t, cols, x);
}

// The persistent F16/BF16 matvec (matvec_half_stream_kernel) where it applies, unless FKV_CUDA_HALF_STREAM=0
// (a tuning knob, read once). Measured on an H100, 8B shape, same call, two runs each: F16 decode 150.5 /
// 115.5 t/s at depth 0 / 32K against 143.8 / 112.7 with the row-per-warp grid.
bool half_stream() {
  static const bool on = [] {
    const char* v = std::getenv("FKV_CUDA_HALF_STREAM");
    return !(v && std::atoi(v) == 0);
  }();
  return on;
}

// Whether matvec_half_rows takes the persistent kernel.
bool half_stream_applies(int64_t rows, int64_t cols) {
  return half_stream() && cols % 1024 == 0 && rows < (int64_t(1) << 31) / cols;
}

// The persistent F16/BF16 matvec over `units` warp work items (rows, gate/up pairs or RoPE row pairs).
template <class T, bool kRope>
void launch_half_stream(const Targets& t, int64_t units, int64_t cols, const float* x, int sm,
                        cudaStream_t st, const RopeFold& rf) {
  const auto kernel = matvec_half_stream_kernel<T, kRope>;
  const int64_t resident = resident_warps(kernel, sm) / (kBlockThreads / 32);  // blocks in one wave
  const int64_t need = (units + kBlockThreads / 32 - 1) / (kBlockThreads / 32);
  const int64_t grid = std::max<int64_t>(1, std::min(resident, need));
  launch_programmatic(kernel, kRope ? "matvec_half_stream (rope fold)" : "matvec_half_stream",
                      dim3(unsigned(grid)), dim3(kBlockThreads), st, false, t, int(cols), x, rf);
}

template <class T>
void matvec_half_rows(const Targets& t, int64_t cols, const float* x, int sm, cudaStream_t st) {
  if (half_stream_applies(t.end[2], cols))
    return launch_half_stream<T, false>(t, t.end[2], cols, x, sm, st, {});
  const bool pipe = pipelined(true);
  if (half_unroll() == 4)
    pipe ? launch_half<T, 4, true>(t, cols, x, sm, st) : launch_half<T, 4, false>(t, cols, x, sm, st);
  else
    pipe ? launch_half<T, 2, true>(t, cols, x, sm, st) : launch_half<T, 2, false>(t, cols, x, sm, st);
}

template <class T>
void matvec_half(const void* w, int64_t rows, int64_t cols, const float* x, float* out, int sm, cudaStream_t st) {
  const T* wt = static_cast<const T*>(w);
  if (cols % 8 == 0)
    matvec_half_rows<T>(one_target(w, rows, out), cols, x, sm, st);
  else
    launch(matvec_scalar_kernel<T>, "matvec_scalar", rows, cols, sm, st, wt, rows, cols, x, out);
}

// The matvecs of t as one launch: the Q4_0x8 kernel, else the F16 / BF16 one (the callers checked the type).
void launch_targets(GgmlType type, WeightLayout layout, const Targets& t, int64_t cols, const float* x, int sm,
                    cudaStream_t st) {
  if (layout == WeightLayout::kQ4_0x8)
    matvec_q4_0x8(t, cols, x, sm, st);
  else if (type == GgmlType::F16)
    matvec_half_rows<__half>(t, cols, x, sm, st);
  else
    matvec_half_rows<__nv_bfloat16>(t, cols, x, sm, st);
}

}  // namespace

bool matvec_fused(GgmlType type, WeightLayout layout, int count, const void* const* w, const int64_t* rows,
                  int64_t cols, const float* x, float* const* out, int sm, cudaStream_t st) {
  const bool half = (type == GgmlType::F16 || type == GgmlType::BF16) && cols % 8 == 0;
  if (count < 1 || count > 3 || !(half || layout == WeightLayout::kQ4_0x8)) return false;
  Targets t{};
  int64_t end = 0;
  for (int m = 0; m < 3; ++m) {
    const int k = m < count ? m : count - 1;
    if (m < count) end += rows[k];
    t.w[m] = w[k];
    t.out[m] = out[k];
    t.end[m] = end;
  }
  if (end == 0) return true;
  launch_targets(type, layout, t, cols, x, sm, st);
  return true;
}

bool matvec_gated(GgmlType type, WeightLayout layout, const void* gate, const void* up, int64_t rows, int64_t cols,
                  const float* x, float* out, float* up_out, int sm, cudaStream_t st) {
  const bool half = (type == GgmlType::F16 || type == GgmlType::BF16) && half_stream() && cols % 1024 == 0 &&
                    2 * rows < (int64_t(1) << 31) / cols;  // the persistent kernel takes it (matvec_half_rows)
  const bool q4 = layout == WeightLayout::kQ4_0x8 && q4_rows_per_warp() == 2;
  if (!half && !q4) return false;
  if (rows == 0) return true;
  launch_targets(type, layout, Targets{{gate, up, up}, {out, up_out, up_out}, {rows, 2 * rows, 2 * rows}, true},
                 cols, x, sm, st);
  return true;
}

bool matvec_qkv_rope(GgmlType type, WeightLayout layout, const void* const* w, const int64_t* rows,
                     int64_t cols, const float* x, float* const* out, const QkvRope& r, int sm,
                     cudaStream_t st) {
  const int64_t total = rows[0] + rows[1] + rows[2];
  if (r.head_dim <= 0 || r.head_dim % 2 != 0 || rows[1] != rows[2]) return false;
  for (int m = 0; m < 3; ++m)
    if (rows[m] <= 0 || rows[m] % r.head_dim != 0) return false;
  const bool half = (type == GgmlType::F16 || type == GgmlType::BF16) && half_stream_applies(total, cols);
  const bool q4 = layout == WeightLayout::kQ4_0x8 && q4_rows_per_warp() == 2;
  if (!half && !q4) return false;
  const Targets t{{w[0], w[1], w[2]}, {out[0], out[1], out[2]}, {rows[0], rows[0] + rows[1], total}, false};
  const RopeFold rf{r.freqs, r.pos0_dev, r.k_cache, r.v_cache, r.pos0, r.head_dim / 2, r.f16};
  if (q4) {
    if (pipelined(false))
      launch_q4_0x8<2, true, true>(t, cols, x, sm, st, rf);
    else
      launch_q4_0x8<2, false, true>(t, cols, x, sm, st, rf);
  } else if (type == GgmlType::F16) {
    launch_half_stream<__half, true>(t, total / 2, cols, x, sm, st, rf);
  } else {
    launch_half_stream<__nv_bfloat16, true>(t, total / 2, cols, x, sm, st, rf);
  }
  return true;
}

size_t decode_matvec_local_bytes() {
  size_t most = 0;
  for (const void* k : {reinterpret_cast<const void*>(matvec_half_stream_kernel<__half, false>),
                        reinterpret_cast<const void*>(matvec_half_stream_kernel<__half, true>),
                        reinterpret_cast<const void*>(matvec_half_stream_kernel<__nv_bfloat16, false>),
                        reinterpret_cast<const void*>(matvec_half_stream_kernel<__nv_bfloat16, true>),
                        reinterpret_cast<const void*>(matvec_q4_0x8_kernel<2, false, false>)}) {
    cudaFuncAttributes fa{};
    check(cudaFuncGetAttributes(&fa, k), "cudaFuncGetAttributes", "reading a decode matvec's attributes");
    most = std::max(most, fa.localSizeBytes);
  }
  return most;
}

void set_programmatic_launch(bool on, bool chain) {
  programmatic_flag().store(on, std::memory_order_relaxed);
  programmatic_chain_flag().store(chain, std::memory_order_relaxed);
}

bool weight_type_supported(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return true;
  }
  return false;
}

void matvec(GgmlType type, WeightLayout layout, const void* w, int64_t rows, int64_t cols, const float* x,
            float* out, int sm, cudaStream_t st) {
  if (rows == 0) return;
  if (layout == WeightLayout::kQ4_0x8) return matvec_q4_0x8(one_target(w, rows, out), cols, x, sm, st);
  switch (type) {
    case GgmlType::F32: {
      const float* wf = static_cast<const float*>(w);
      if (cols % 4 == 0)
        launch(matvec_f32_kernel, "matvec_f32", rows, cols / 4, sm, st, wf, rows, cols, x, out);
      else
        launch(matvec_scalar_kernel<float>, "matvec_scalar", rows, cols, sm, st, wf, rows, cols, x, out);
      return;
    }
    case GgmlType::F16: return matvec_half<__half>(w, rows, cols, x, out, sm, st);
    case GgmlType::BF16: return matvec_half<__nv_bfloat16>(w, rows, cols, x, out, sm, st);
    case GgmlType::Q4_0: return matvec_quant<Q4_0>(w, rows, cols, x, out, sm, st);
    case GgmlType::Q4_1: return matvec_quant<Q4_1>(w, rows, cols, x, out, sm, st);
    case GgmlType::Q8_0: return matvec_quant<Q8_0>(w, rows, cols, x, out, sm, st);
    case GgmlType::Q4_K: return matvec_quant<Q4_K>(w, rows, cols, x, out, sm, st);
    case GgmlType::Q6_K: return matvec_quant<Q6_K>(w, rows, cols, x, out, sm, st);
  }
  throw Error(ErrorCode::kUnsupported, "CUDA matvec: unsupported weight type " + type_name(uint32_t(type)));
}

}  // namespace fkv::cuda
