// The full-cache decode attention kernel (n <= 2 query tokens, head_dim 64 or 128) and the log-sum-exp merge
// of the split partials, in a header so that a host test (tests/cuda/attention_emulation_test.cpp) can
// compile the same code against a thread emulation of a block and check its indexing, barriers and math
// without a GPU. Device code only uses what that emulation provides: threadIdx/blockIdx, __syncthreads,
// __shfl_xor_sync, static and dynamic (FKV_DYN_SMEM) shared memory, and the cp.async helpers below (plain
// copies on the host).
//
// Why a second kernel (attention.cu keeps the first, FKV_CUDA_ATTN_V2=0): the first one held its cache rows
// in registers (8 lanes per row, 16 dims and 4 query heads of q per lane: 128 registers, 4 blocks a
// multiprocessor) and ran at 66% of DRAM peak at 32K on an H100. Here the rows travel global -> shared memory
// by cp.async in a ring of kStages tiles of 8 KB, so the bytes in flight (3 tiles a block, 6 blocks a
// multiprocessor: 144 KB) cost no registers and the loads never wait for arithmetic; the K pass's last tiles
// already prefetch the first V tiles, so the softmax between the passes runs with loads in flight. A row is
// read from shared memory by D/8 lanes of 8 dims each (q: 4 heads x 8 registers), and the 4 heads' dot
// products are reduced across those lanes by recursive halving (each exchange moves half of the remaining
// heads, so 5 shuffles reduce 4 heads over 16 lanes instead of 16): the lane left holding head h writes its
// score.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstring>

#include "pdl.cuh"
#include "warp_softmax.cuh"

// #pragma unroll for nvcc only (a host compiler warns about it and GCC cannot silence that from a pragma).
#ifndef FKV_UNROLL
#if defined(__CUDACC__)
#define FKV_UNROLL _Pragma("unroll")
#else
#define FKV_UNROLL
#endif
#endif

#ifndef FKV_DYN_SMEM
#define FKV_DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

namespace fkv::cuda {
namespace attn2 {
namespace {  // each includer (attention.cu, the host emulation test) has its own copy

constexpr int kThreads = 128;     // 4 warps
constexpr int kMinBlocks = 6;     // per multiprocessor: 37 KB of shared memory each; at most 80 registers
constexpr int kSpan = 256;        // positions per split (the partials' layout: attention.cu's kSpan)
constexpr int kHC = 4;            // query heads per block (a GQA group's heads share the rows)
constexpr int kTileBytes = 8192;  // cache bytes per pipeline stage
constexpr int kStages = 4;        // tiles in the ring: 3 in flight while one is used
constexpr int kCombineThreads = 256, kCombineWarps = kCombineThreads / 32;
constexpr int kCombineDims = 32;  // output dims per combine block (a lane each)
constexpr int kMergeUnroll = 8;   // kMerge: partial rows in flight per thread in the last block's merge
constexpr int kStatUnroll = 4;    // kMerge: (max, sum) pairs in flight per lane
// kMerge: the last block keeps every split's weight for its heads in the tiles' space.
constexpr int kMergeMaxSplits = kStages * kTileBytes / 4 / kHC;
static_assert(kHC == 4, "the V pass reads a row's weights as one float4");
static_assert(kHC <= kThreads / 32, "the softmax gives each head a warp");

// ---- cp.async (sm_80+): 16 bytes global -> shared without registers; zero-filled when !valid. Older
// architectures and the host emulation copy synchronously (commit and wait are then no-ops).
__device__ __forceinline__ void copy16_async(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
#elif defined(__CUDA_ARCH__)
  *static_cast<uint4*>(smem) = valid ? *static_cast<const uint4*>(gmem) : make_uint4(0, 0, 0, 0);
#else  // host: memcpy, since the emulation's compiler holds the kernel to strict aliasing
  if (valid)
    memcpy(smem, gmem, 16);
  else
    memset(smem, 0, 16);
#endif
}
__device__ __forceinline__ void copy_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N of this thread's committed groups are still pending.
template <int N>
__device__ __forceinline__ void copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// ---- The merge in the last block (decode_kernel's kMerge). Loads of other blocks' partials go to L2
// (ld.global.cg): they were written by other multiprocessors during this kernel, so a line this one's L1
// holds could be stale. The host emulation runs blocks one after another: plain copies and no-op fences.
template <class T>  // float4, float2
__device__ __forceinline__ T load_cg(const T* p) {
#if defined(__CUDA_ARCH__)
  return __ldcg(p);
#else
  T v;
  memcpy(&v, p, sizeof(T));
  return v;
#endif
}
__device__ __forceinline__ void fence_gpu() {
#if defined(__CUDA_ARCH__)
  __threadfence();
#endif
}
// Counts one more arrival at *counter and returns the count before it.
__device__ __forceinline__ unsigned arrive(unsigned* counter) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(counter, 1u);
#else
  return (*counter)++;
#endif
}

// Geometry for a cache of element type KV and head_dim D (64 or 128). A row is read by kLanes adjacent lanes
// (a "row group"), 8 dims each, as kChunks 16-byte vectors: lane l's j-th dim is lane_dim(l, j), so that the
// lanes of a group read consecutive vectors (no bank conflicts) for fp32 too.
template <class KV, int D>
struct Geo {
  static_assert(D == 64 || D == 128, "vectorised head dims only");
  static constexpr int kVec = 16 / int(sizeof(KV));  // elements per 16-byte vector
  static constexpr int kLanes = D / 8;               // lanes per row
  static constexpr int kChunks = 8 / kVec;           // vectors per lane and row
  static constexpr int kGroups = kThreads / kLanes;  // row groups per block
  static constexpr int kTileRows = kTileBytes / (D * int(sizeof(KV)));
  static constexpr int kRows = kTileRows / kGroups;           // rows per group and tile
  static constexpr int kRowVecs = D / kVec;                   // vectors per row
  static constexpr int kCopies = kTileBytes / 16 / kThreads;  // cp.async per thread and tile
  static_assert(kRows >= 1 && kTileRows % kGroups == 0 && kSpan % kTileRows == 0, "tile shape");
  static_assert(32 % kLanes == 0 && kLanes >= kHC && kThreads % kRowVecs == 0, "lane shape");
  __device__ static int lane_dim(int l, int j) { return ((j / kVec) * kLanes + l) * kVec + j % kVec; }
};

__device__ __forceinline__ void widen(const __half* p, float* f) {
#if defined(__CUDA_ARCH__)
  const uint4 w = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&w);
#else
  __half2 h[4];
  memcpy(static_cast<void*>(h), p, 16);
#endif
  FKV_UNROLL
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void widen(const float* p, float* f) {
#if defined(__CUDA_ARCH__)
  const float4 v = *reinterpret_cast<const float4*>(p);
#else
  float4 v;
  memcpy(&v, p, 16);
#endif
  f[0] = v.x;
  f[1] = v.y;
  f[2] = v.z;
  f[3] = v.w;
}

// Lane l's 8 values of a row held in shared memory.
template <class KV, int D>
__device__ __forceinline__ void load_row(const KV* row, int l, float* f) {
  using G = Geo<KV, D>;
  FKV_UNROLL
  for (int c = 0; c < G::kChunks; ++c) widen(row + (c * G::kLanes + l) * G::kVec, f + c * G::kVec);
}

// Sums s[0..N) over the lanes of a group of 2B lanes (B a power of two) by recursive halving: at each step
// the lanes whose bit B is set keep the upper half of the values and hand over the lower half. Afterwards
// s[0] of lane l holds the group's total of value l / (2B / N) (N <= 2B), in every lane that shares those
// bits.
template <int N, int B>
__device__ __forceinline__ void reduce_scatter(float* s, int l) {
  if constexpr (N > 1) {
    const bool up = (l & B) != 0;
    FKV_UNROLL
    for (int i = 0; i < N / 2; ++i) {
      const float send = up ? s[i] : s[i + N / 2];
      const float keep = up ? s[i + N / 2] : s[i];
      s[i] = keep + __shfl_xor_sync(0xffffffffu, send, B);
    }
    reduce_scatter<N / 2, B / 2>(s, l);
  } else if constexpr (B >= 1) {
    s[0] += __shfl_xor_sync(0xffffffffu, s[0], B);
    reduce_scatter<1, B / 2>(s, l);
  }
}

// Partial (max, sum, unnormalised output[D]) of token i, query head h, split `split`.
__device__ __forceinline__ float* partial(float* ws, int i, int h, int split, int H, int n_splits, int D) {
  return ws + ((size_t(i) * H + h) * n_splits + split) * size_t(D + 2);
}
// kMerge's layout of the same floats: the unnormalised outputs [token][head][split][D] (rows 16-byte aligned,
// so that the merge reads them as float4), then the (max, sum) pairs [token][head][split]; n tokens.
__device__ __forceinline__ float* merge_out(float* ws, int i, int h, int split, int H, int n_splits, int D) {
  return ws + ((size_t(i) * H + h) * n_splits + split) * size_t(D);
}
__device__ __forceinline__ float2* merge_stats(float* ws, int n, int i, int h, int H, int n_splits, int D) {
  return reinterpret_cast<float2*>(ws + size_t(n) * H * n_splits * D) + (size_t(i) * H + h) * n_splits;
}

// kMerge, after a block of a multi-split token wrote its partials: the last block of (token i, head chunk)
// to arrive merges every split's partials into out with the log-sum-exp rule; the others return. Ordering:
// every thread fences its partial writes before the barrier after which thread 0 counts the arrival
// (release); the thread that sees the count complete fences again before the barrier after which the block
// reads (acquire), and reads through L2 (load_cg). The last block resets the counter, so the next launch (a
// graph replay) starts from zero. Shared memory: wts [kHC][valid] (the tiles' space), red the scores' space,
// l_sum [kHC], flag one word; all free once the block's partials are written.
template <int D>
__device__ __forceinline__ void merge_last(float* ws, float* __restrict__ out, unsigned* counters, int i,
                                           int h0, int nh, int H, int n_splits, int valid, float* wts,
                                           float* red, float* l_sum, unsigned* flag) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int n = int(gridDim.z);
  fence_gpu();
  __syncthreads();
  if (tid == 0) {
    unsigned* c = counters + size_t(i) * gridDim.x + blockIdx.x;
    const unsigned last = arrive(c) == unsigned(valid - 1);
    if (last) {
      *c = 0;
      fence_gpu();
    }
    *flag = last;
  }
  __syncthreads();
  if (!*flag) return;

  // Weights: warp w takes head w; (max, sum) pairs kStatUnroll per lane in flight, an online max over them
  // (exp(-inf) = 0 for a lane's first pair), then the maxima and sums across the lanes. wts holds the
  // splits' maxima, then their weights exp(m_s - M).
  if (warp < nh) {
    const float2* st = merge_stats(ws, n, i, h0 + warp, H, n_splits, D);
    float* w = wts + warp * valid;
    float m = -INFINITY, l = 0.0f;
    for (int s0 = 0; s0 < valid; s0 += 32 * kStatUnroll) {
      float2 v[kStatUnroll];
      FKV_UNROLL
      for (int u = 0; u < kStatUnroll; ++u) {
        const int s = s0 + 32 * u + lane;
        v[u] = s < valid ? load_cg(st + s) : make_float2(-INFINITY, 0.0f);
      }
      FKV_UNROLL
      for (int u = 0; u < kStatUnroll; ++u) {
        const int s = s0 + 32 * u + lane;
        if (s < valid) {
          w[s] = v[u].x;
          const float mn = fmaxf(m, v[u].x);
          l = fmaf(l, expf(m - mn), v[u].y * expf(v[u].x - mn));
          m = mn;
        }
      }
    }
    float M = m;
    FKV_UNROLL
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    l *= expf(m - M);  // a lane without splits: 0 * exp(-inf)
    FKV_UNROLL
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    for (int s = lane; s < valid; s += 32) w[s] = expf(w[s] - M);  // the lane's own entries
    if (lane == 0) l_sum[warp] = l;
  }
  __syncthreads();

  // Outputs: thread (phase, head, column of 4 dims) adds splits phase, phase + kPhases, ... with
  // kMergeUnroll rows in flight (a warp reads 512 contiguous bytes of a partial row); the phases' sums meet
  // in shared memory.
  constexpr int kQ = D / 4;                       // float4 columns of a row
  constexpr int kPhases = kThreads / (kHC * kQ);  // 1 for D 128, 2 for D 64
  static_assert(kPhases >= 1 && kThreads % (kHC * kQ) == 0, "merge shape");
  static_assert((kPhases - 1) * kHC * D <= kSpan * kHC, "merge reduction buffer");
  const int c4 = tid % kQ, hh = (tid / kQ) % kHC, ph = tid / (kQ * kHC);
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (hh < nh) {
    const float4* col = reinterpret_cast<const float4*>(merge_out(ws, i, h0 + hh, 0, H, n_splits, D)) + c4;
    const float* w = wts + hh * valid;
    for (int s = ph; s < valid; s += kMergeUnroll * kPhases) {
      float4 x[kMergeUnroll];
      FKV_UNROLL
      for (int u = 0; u < kMergeUnroll; ++u) {
        const int t = s + u * kPhases;
        x[u] = t < valid ? load_cg(col + size_t(t) * kQ) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
      FKV_UNROLL
      for (int u = 0; u < kMergeUnroll; ++u) {
        const int t = s + u * kPhases;
        if (t < valid) {
          const float e = w[t];
          acc.x = fmaf(e, x[u].x, acc.x);
          acc.y = fmaf(e, x[u].y, acc.y);
          acc.z = fmaf(e, x[u].z, acc.z);
          acc.w = fmaf(e, x[u].w, acc.w);
        }
      }
    }
  }
  if constexpr (kPhases > 1) {
    float4* r4 = reinterpret_cast<float4*>(red);  // [phase - 1][head][column]
    if (ph > 0) r4[((ph - 1) * kHC + hh) * kQ + c4] = acc;
    __syncthreads();
    if (ph == 0) {
      FKV_UNROLL
      for (int p = 1; p < kPhases; ++p) {
        const float4 y = r4[((p - 1) * kHC + hh) * kQ + c4];
        acc = make_float4(acc.x + y.x, acc.y + y.y, acc.z + y.z, acc.w + y.w);
      }
    }
  }
  if (ph == 0 && hh < nh) {
    const float L = l_sum[hh];
    float* o = out + (size_t(i) * H + h0 + hh) * D + 4 * c4;
    o[0] = acc.x / L;
    o[1] = acc.y / L;
    o[2] = acc.z / L;
    o[3] = acc.w / L;
  }
}

// Block (KV head x chunk of kHC query heads, split, token): the split's positions [t_begin, t_begin + count)
// as a stream of tiles through the shared ring, first K (scores to shared memory), then V (weighted sum).
// Scores of the span stay in shared memory, so its softmax needs no running rescale.
// !kMerge: writes partials (partial()) for combine_kernel; out and counters are unused.
// kMerge: a token whose positions fit one split gets its normalised output written directly (no partials,
// no counter); otherwise the blocks write partials in merge_out/merge_stats's layout and the last one to
// finish merges them (merge_last). counters: one per (token, blockIdx.x), zero before the launch and after.
template <class KV, int D, bool kMerge>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    decode_kernel(const float* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc, int pos0,
                  const int* __restrict__ pos0_dev, int H, int KVH, float scale, int n_splits,
                  float* __restrict__ ws, float* __restrict__ out, unsigned* __restrict__ counters) {
  using G = Geo<KV, D>;
  // kMerge: this launch writes the output, so the output projection may start loading its weights (as after
  // combine_kernel); it waits for this grid's end before reading.
  if constexpr (kMerge) pdl_allow_dependents();
  pdl_wait();  // launched programmatically (the chain): q and this step's K/V row come from the q/k/v matvec
  const int group = H / KVH, hchunks = (group + kHC - 1) / kHC;
  const int kvh = blockIdx.x / hchunks, hc = blockIdx.x % hchunks;
  const int h0 = kvh * group + hc * kHC, nh = min(kHC, group - hc * kHC);
  const int split = blockIdx.y, i = blockIdx.z;
  const int len = (pos0_dev ? *pos0_dev : pos0) + i + 1;
  const int t_begin = split * kSpan, count = min(kSpan, len - t_begin);
  if (count <= 0) return;  // past this token's positions: the merge never reads it
  // kMerge: the blocks of this token and head chunk that run.
  const int valid = (len + kSpan - 1) / kSpan;

  __shared__ __align__(16) unsigned char tiles[kStages * kTileBytes];
  // [position][head]: the scores, after the softmax the V pass's weights.
  __shared__ __align__(16) float scores[kSpan * kHC];
  __shared__ float head_sum[kHC];  // kMerge: the softmax sums of the span
  __shared__ unsigned last_flag;   // kMerge: this block merges
#if !defined(__CUDACC__)
  // Host emulation: shared memory starts as NaN, so that a read of anything not written shows.
  if (threadIdx.x == 0) {
    for (float& x : scores) x = NAN;
    for (int e = 0; e < kStages * kTileBytes / 4; ++e) reinterpret_cast<float*>(tiles)[e] = NAN;
  }
  __syncthreads();
#endif
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = tid / G::kLanes, l = tid % G::kLanes;

  // Copies: thread tid moves vectors tid + c * kThreads of a tile (row-major, kRowVecs vectors a row), so a
  // warp's copies are contiguous 16-byte pieces of rows; rows past the span are zero-filled, never read.
  const size_t row_stride = size_t(KVH) * D;
  const int copy_row = tid / G::kRowVecs;
  const size_t copy_off = size_t(kvh) * D + size_t(tid % G::kRowVecs) * G::kVec;
  constexpr int kCopyRowStep = kThreads / G::kRowVecs;
  const int n_tiles = (count + G::kTileRows - 1) / G::kTileRows;  // K tiles; V has as many
  const int total = 2 * n_tiles;
  auto issue = [&](int x) {  // tile x of the stream (K tiles, then V tiles) into stage x % kStages
    const bool is_v = x >= n_tiles;
    const int row0 = (is_v ? x - n_tiles : x) * G::kTileRows + copy_row;
    const KV* base = (is_v ? vc : kc) + copy_off;
    unsigned char* dst = tiles + (x % kStages) * kTileBytes + tid * 16;
    FKV_UNROLL
    for (int c = 0; c < G::kCopies; ++c) {
      const int r = row0 + c * kCopyRowStep;
      const bool ok = r < count;
      copy16_async(dst + c * kThreads * 16, base + size_t(t_begin + (ok ? r : 0)) * row_stride, ok);
    }
  };
  // Before tile x is used: it has landed for every thread, and every thread is done with tile x - 1, whose
  // stage then takes tile x + kStages - 1. One commit group per tile (empty past the end), so that "at most
  // kStages - 2 pending" means "tile x has landed".
  auto next_tile = [&](int x) {
    copy_wait<kStages - 2>();
    __syncthreads();
    if (x + kStages - 1 < total) issue(x + kStages - 1);
    copy_commit();
  };
  FKV_UNROLL
  for (int x = 0; x < kStages - 1; ++x) {
    if (x < total) issue(x);
    copy_commit();
  }

  float qr[kHC][8];
  FKV_UNROLL
  for (int h = 0; h < kHC; ++h) {
    FKV_UNROLL
    for (int j = 0; j < 8; ++j)
      qr[h][j] = h < nh ? q[(size_t(i) * H + h0 + h) * D + G::lane_dim(l, j)] * scale : 0.0f;
  }

  // Pass 1: scores. Group g takes rows g, g + kGroups, ... of each tile.
  constexpr int kHeadLanes = G::kLanes / kHC;  // lanes left holding one head's score
  for (int x = 0; x < n_tiles; ++x) {
    next_tile(x);
    const KV* tile = reinterpret_cast<const KV*>(tiles + (x % kStages) * kTileBytes);
    FKV_UNROLL
    for (int r = 0; r < G::kRows; ++r) {
      const int row = r * G::kGroups + g;
      float k[8];
      load_row<KV, D>(tile + row * D, l, k);
      float s[kHC];
      FKV_UNROLL
      for (int h = 0; h < kHC; ++h) {
        float a = 0.0f;
        FKV_UNROLL
        for (int j = 0; j < 8; ++j) a = fmaf(qr[h][j], k[j], a);
        s[h] = a;
      }
      reduce_scatter<kHC, G::kLanes / 2>(s, l);
      const int t = x * G::kTileRows + row;
      if (l % kHeadLanes == 0 && t < count) scores[t * kHC + l / kHeadLanes] = s[0];
    }
  }
  __syncthreads();  // every score is written
  // Softmax statistics: warp w handles head w. The first V tiles are in flight meanwhile.
  if (warp < nh) {
    const float2 ms = warp_softmax_column(scores, count, kHC, warp, lane);
    const float m = ms.x, sum = ms.y;
    if (lane == 0) {
      if constexpr (kMerge) {
        head_sum[warp] = sum;
        if (valid > 1)
          merge_stats(ws, int(gridDim.z), i, h0 + warp, H, n_splits, D)[split] = make_float2(m, sum);
      } else {
        float* part = partial(ws, i, h0 + warp, split, H, n_splits, D);
        part[0] = m;
        part[1] = sum;
      }
    }
  }
  // (next_tile's barrier orders the weights before their first use.)

  // Pass 2: weighted sum of the V rows.
  float acc[kHC][8];
  FKV_UNROLL
  for (int h = 0; h < kHC; ++h) {
    FKV_UNROLL
    for (int j = 0; j < 8; ++j) acc[h][j] = 0.0f;
  }
  for (int x = n_tiles; x < total; ++x) {
    next_tile(x);
    const KV* tile = reinterpret_cast<const KV*>(tiles + (x % kStages) * kTileBytes);
    FKV_UNROLL
    for (int r = 0; r < G::kRows; ++r) {
      const int row = r * G::kGroups + g;
      const int t = (x - n_tiles) * G::kTileRows + row;
      // Rows past the span are zeros, but their weights were never written: 0, not 0 * NaN.
      const float4 p =
          t < count ? *reinterpret_cast<const float4*>(scores + t * kHC) : make_float4(0, 0, 0, 0);
      float v[8];
      load_row<KV, D>(tile + row * D, l, v);
      FKV_UNROLL
      for (int j = 0; j < 8; ++j) {
        acc[0][j] = fmaf(p.x, v[j], acc[0][j]);
        acc[1][j] = fmaf(p.y, v[j], acc[1][j]);
        acc[2][j] = fmaf(p.z, v[j], acc[2][j]);
        acc[3][j] = fmaf(p.w, v[j], acc[3][j]);
      }
    }
  }
  // Sum over the row groups: those of a warp by shuffles, then the warps in shared memory (the tiles' space).
  FKV_UNROLL
  for (int h = 0; h < kHC; ++h) {
    FKV_UNROLL
    for (int j = 0; j < 8; ++j) {
      FKV_UNROLL
      for (int o = G::kLanes; o < 32; o <<= 1) acc[h][j] += __shfl_xor_sync(0xffffffffu, acc[h][j], o);
    }
  }
  copy_wait<0>();   // only empty groups remain, but no copy may land in the reused space
  __syncthreads();  // every warp is done with the last tile
  float* red = reinterpret_cast<float*>(tiles);  // [warp][head][D]
  static_assert(kThreads / 32 * kHC * D * 4 <= kStages * kTileBytes, "reduction buffer");
  if (lane < G::kLanes) {
    FKV_UNROLL
    for (int h = 0; h < kHC; ++h) {
      FKV_UNROLL
      for (int j = 0; j < 8; ++j) red[(warp * kHC + h) * D + G::lane_dim(l, j)] = acc[h][j];
    }
  }
  __syncthreads();
  for (int e = tid; e < nh * D; e += kThreads) {
    const int h = e / D, d = e % D;
    float s = 0.0f;
    FKV_UNROLL
    for (int w = 0; w < kThreads / 32; ++w) s += red[(w * kHC + h) * D + d];
    if constexpr (!kMerge)
      partial(ws, i, h0 + h, split, H, n_splits, D)[2 + d] = s;
    else if (valid == 1)
      out[(size_t(i) * H + h0 + h) * D + d] = s / head_sum[h];  // combine_kernel's result for one split
    else
      merge_out(ws, i, h0 + h, split, H, n_splits, D)[d] = s;
  }
  if constexpr (kMerge) {
    static_assert(kMergeMaxSplits * kHC * 4 <= kStages * kTileBytes, "merge weights");
    if (valid > 1)  // uniform over the block; red (the tiles' space) is read above, so barrier first
      merge_last<D>(ws, out, counters, i, h0, nh, H, n_splits, valid, reinterpret_cast<float*>(tiles), scores,
                    head_sum, &last_flag);
  }
}

// A combine block's split weights (this kernel's and attention.cu's first combine): M the largest of the
// `valid` splits' maxima (partials `stride` floats apart from base: m, l, acc), weight[s] = exp(m_s - M) in
// shared memory, and the return value L = Σ_s weight[s] l_s, in every thread. red: kCombineWarps floats of
// shared memory; blocks of kCombineThreads. Ends with a barrier, which also orders the weights.
__device__ __forceinline__ float combine_weights(const float* base, size_t stride, int valid, float* weight,
                                                 float* red) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float m = -INFINITY;
  for (int s = threadIdx.x; s < valid; s += kCombineThreads) m = fmaxf(m, base[s * stride]);
  FKV_UNROLL
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  float M = -INFINITY;
  FKV_UNROLL
  for (int k = 0; k < kCombineWarps; ++k) M = fmaxf(M, red[k]);
  __syncthreads();  // red is reused below

  float l = 0.0f;
  for (int s = threadIdx.x; s < valid; s += kCombineThreads) {
    const float e = expf(base[s * stride] - M);
    weight[s] = e;
    l = fmaf(e, base[s * stride + 1], l);
  }
  FKV_UNROLL
  for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
  if (lane == 0) red[warp] = l;
  __syncthreads();  // also orders the weights
  float L = 0.0f;
  FKV_UNROLL
  for (int k = 0; k < kCombineWarps; ++k) L += red[k];
  return L;
}

// Merge: out[i, h, dims of chunk blockIdx.z] from the splits that hold positions of token i, weights
// exp(m_s - M) / L. Block (head, token, chunk of kCombineDims dims): the threads share the per-split max,
// weights (kept in shared memory) and sum, then warp w adds splits w, w + 8, ... with a lane per dim (a warp
// reads 128 contiguous bytes of a partial), kCombineUnroll splits in flight. The previous merge (a block per
// head and token, 32 blocks at 8B shape) waited on long chains of loads from few multiprocessors.
constexpr int kCombineUnroll = 8;
__global__ void __launch_bounds__(kCombineThreads)
    combine_kernel(const float* __restrict__ ws, int pos0, const int* __restrict__ pos0_dev, int H, int D,
                   int span, int n_splits, float* __restrict__ out) {
  pdl_allow_dependents();  // the output projection may start loading its weights
  FKV_DYN_SMEM(weight);    // [n_splits]
  __shared__ float red[kCombineWarps];
  __shared__ float sums[kCombineWarps][kCombineDims];
  const int h = blockIdx.x, i = blockIdx.y, d = blockIdx.z * kCombineDims + (threadIdx.x & 31);
  const int len = (pos0_dev ? *pos0_dev : pos0) + i + 1;
  const int valid = min(n_splits, (len + span - 1) / span);
  const size_t stride = size_t(D + 2);
  const float* base = ws + (size_t(i) * H + h) * n_splits * stride;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  const float L = combine_weights(base, stride, valid, weight, red);

  float o = 0.0f;
  if (d < D) {
    const float* col = base + 2 + d;
    int s = warp;
    for (; s + (kCombineUnroll - 1) * kCombineWarps < valid; s += kCombineUnroll * kCombineWarps) {
      float x[kCombineUnroll];
      FKV_UNROLL
      for (int u = 0; u < kCombineUnroll; ++u) x[u] = col[(s + u * kCombineWarps) * stride];
      FKV_UNROLL
      for (int u = 0; u < kCombineUnroll; ++u) o = fmaf(weight[s + u * kCombineWarps], x[u], o);
    }
    for (; s < valid; s += kCombineWarps) o = fmaf(weight[s], col[s * stride], o);
  }
  sums[warp][lane] = o;
  __syncthreads();
  if (warp == 0 && d < D) {
    float t = 0.0f;
    FKV_UNROLL
    for (int w = 0; w < kCombineWarps; ++w) t += sums[w][lane];
    out[(size_t(i) * H + h) * D + d] = t / L;
  }
}

}  // namespace
}  // namespace attn2
}  // namespace fkv::cuda
