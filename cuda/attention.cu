// Causal attention over a full KV cache, in two kernels that share one split-KV scheme:
//  - decode (few query tokens): flash-decoding. A block takes one KV head, the query heads that read it (GQA:
//    the cache is read once per group, not once per query head) and one span of kSpan positions. Scores go to
//    shared memory, so the span's softmax needs no running rescale; the V pass weights rows by exp(s - max).
//  - prefill (many query tokens): a block takes 32 queries of one head and loops over 32-position tiles of
//    K and V staged in shared memory (fp32), with the usual online softmax per query row.
// Both write per-split partials (max, sum, unnormalised output) that attention_combine merges with the
// log-sum-exp rule. All arithmetic is fp32; the cache is read in its type (f16 or fp32).
// The decode kernel of head_dim 64 and 128 and the merge used by default are in attention_decode_kernels.cuh
// (a cp.async pipeline through shared memory); the ones here are the first versions, still used for other
// head dims and with FKV_CUDA_ATTN_V2=0.
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "attention_decode_kernels.cuh"
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "pdl.cuh"

namespace fkv::cuda {
namespace {

constexpr int kSpan = 256;           // decode: positions per split
constexpr int kDecodeThreads = 128;  // 16 groups of 8 lanes; a group reads one cache row at a time
constexpr int kDecodeMaxTokens = 2;  // more query tokens than this use the prefill kernel
constexpr int kQTile = 32, kKTile = 32, kPrefillThreads = 128, kRowsPerWarp = 8;
static_assert(kSpan == attn2::kSpan, "both decode kernels write the same partials");

// 2: attention_decode_kernels.cuh's decode kernel and merge; 1: the first versions below. FKV_CUDA_ATTN_V2=0
// selects 1 (read once); set_attention_version overrides it (tests).
std::atomic<int> g_attention_version{0};
int attention_version_now() {
  static const int from_env = [] {
    const char* v = std::getenv("FKV_CUDA_ATTN_V2");
    return v && std::atoi(v) == 0 ? 1 : 2;
  }();
  const int forced = g_attention_version.load(std::memory_order_relaxed);
  return forced == 1 || forced == 2 ? forced : from_env;
}

// Whether the version-2 decode kernel merges its splits in its last block (attn2::decode_kernel's kMerge)
// instead of a combine launch: on unless FKV_CUDA_ATTN_MERGE_LAST=0 (read once); set_attention_merge_last
// overrides it (tests).
std::atomic<int> g_merge_last{-1};
bool merge_last_now() {
  static const bool from_env = [] {
    const char* v = std::getenv("FKV_CUDA_ATTN_MERGE_LAST");
    return !(v && std::atoi(v) == 0);
  }();
  const int forced = g_merge_last.load(std::memory_order_relaxed);
  return forced >= 0 ? forced != 0 : from_env;
}

__device__ __forceinline__ float load_kv(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load_kv(const float* p) { return *p; }

// DPL consecutive cache values starting at p (16-byte aligned when exact) into fp32.
template <int DPL>
__device__ __forceinline__ void load_slice(const __half* p, float* f) {
  const uint4* p4 = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int c = 0; c < DPL / 8; ++c) {
    const uint4 w = p4[c];
    const __half2* h = reinterpret_cast<const __half2*>(&w);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 v = __half22float2(h[i]);
      f[8 * c + 2 * i] = v.x;
      f[8 * c + 2 * i + 1] = v.y;
    }
  }
}
template <int DPL>
__device__ __forceinline__ void load_slice(const float* p, float* f) {
  const float4* p4 = reinterpret_cast<const float4*>(p);
#pragma unroll
  for (int c = 0; c < DPL / 4; ++c) {
    const float4 v = p4[c];
    f[4 * c] = v.x;
    f[4 * c + 1] = v.y;
    f[4 * c + 2] = v.z;
    f[4 * c + 3] = v.w;
  }
}

// Dims handled by lane l of a group: l*DPL .. l*DPL+DPL-1 (those < D). kExact: D == 8*DPL, vector loads.
template <int DPL, bool kExact, class KV>
__device__ __forceinline__ void load_row_slice(const KV* row, int lane8, int D, float* f) {
  if constexpr (kExact) {
    load_slice<DPL>(row + lane8 * DPL, f);
  } else {
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
      const int d = lane8 * DPL + j;
      f[j] = d < D ? load_kv(row + d) : 0.0f;
    }
  }
}

struct Partial {
  __device__ static float* at(float* ws, int i, int h, int split, int H, int S, int D) {
    return ws + ((size_t(i) * H + h) * S + split) * size_t(D + 2);
  }
};

// kRows: cache rows per group in flight in each pass.
template <int DPL, int HC, bool kExact, class KV, int kRows>
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_kernel(const float* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
                            int pos0, const int* __restrict__ pos0_dev, int H, int KVH, int D, float scale,
                            int n_splits, float* __restrict__ ws) {
  const int group = H / KVH, hchunks = (group + HC - 1) / HC;
  const int kvh = blockIdx.x / hchunks, hc = blockIdx.x % hchunks;
  const int h0 = kvh * group + hc * HC, nh = min(HC, group - hc * HC);
  const int split = blockIdx.y, i = blockIdx.z;
  const int len = (pos0_dev ? *pos0_dev : pos0) + i + 1;
  const int t_begin = split * kSpan, t_end = min(t_begin + kSpan, len);
  if (t_begin >= t_end) return;  // past this token's positions: combine never reads it

  const int g = threadIdx.x >> 3, lane8 = threadIdx.x & 7;
  constexpr int kGroups = kDecodeThreads / 8;
  __shared__ float scores[HC][kSpan];
  __shared__ float red[kDecodeThreads / 32][HC][8 * DPL];

  float qr[HC][DPL];
#pragma unroll
  for (int h = 0; h < HC; ++h)
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
      const int d = lane8 * DPL + j;
      qr[h][j] = (h < nh && d < D) ? q[(size_t(i) * H + h0 + h) * D + d] * scale : 0.0f;
    }

  const size_t row_stride = size_t(KVH) * D;
  // Pass 1: scores of the span. The loop runs the same trips on every lane of a warp (the shuffles need the
  // whole warp): a warp takes 4 * kRows consecutive positions per trip, kRows per group, all loads issued
  // before any is used (bytes in flight set the speed); groups past the span's end load nothing.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int t0 = t_begin + 4 * kRows * warp; t0 < t_end; t0 += kRows * kGroups) {
    float k[kRows][DPL];
    bool valid[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int t = t0 + 4 * r + (g & 3);
      valid[r] = t < t_end;
      if (valid[r]) {
        load_row_slice<DPL, kExact>(kc + size_t(t) * row_stride + size_t(kvh) * D, lane8, D, k[r]);
      } else {
#pragma unroll
        for (int j = 0; j < DPL; ++j) k[r][j] = 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int h = 0; h < HC; ++h) {
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < DPL; ++j) s = fmaf(qr[h][j], k[r][j], s);
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s += __shfl_xor_sync(0xffffffffu, s, 4);
        if (lane8 == 0 && valid[r]) scores[h][t0 + 4 * r + (g & 3) - t_begin] = s;
      }
  }
  __syncthreads();
  // Softmax statistics: warp w handles head w (HC <= number of warps).
  const int count = t_end - t_begin;
  if (warp < nh) {
    float m = -INFINITY;
    for (int t = lane; t < count; t += 32) m = fmaxf(m, scores[warp][t]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.0f;
    for (int t = lane; t < count; t += 32) {
      const float p = expf(scores[warp][t] - m);
      scores[warp][t] = p;
      l += p;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) {
      float* part = Partial::at(ws, i, h0 + warp, split, H, n_splits, D);
      part[0] = m;
      part[1] = l;
    }
  }
  __syncthreads();
  // Pass 2: weighted sum of V rows.
  float acc[HC][DPL];
#pragma unroll
  for (int h = 0; h < HC; ++h)
#pragma unroll
    for (int j = 0; j < DPL; ++j) acc[h][j] = 0.0f;
  // kRows rows per group in flight; no shuffles inside, so groups may leave the loop at different trips.
  int t = t_begin + g;
  for (; t + (kRows - 1) * kGroups < t_end; t += kRows * kGroups) {
    float v[kRows][DPL];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      load_row_slice<DPL, kExact>(vc + size_t(t + r * kGroups) * row_stride + size_t(kvh) * D, lane8, D, v[r]);
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int h = 0; h < HC; ++h) {
        const float p = scores[h][t + r * kGroups - t_begin];
#pragma unroll
        for (int j = 0; j < DPL; ++j) acc[h][j] = fmaf(p, v[r][j], acc[h][j]);
      }
  }
  for (; t < t_end; t += kGroups) {
    float v[DPL];
    load_row_slice<DPL, kExact>(vc + size_t(t) * row_stride + size_t(kvh) * D, lane8, D, v);
#pragma unroll
    for (int h = 0; h < HC; ++h) {
      const float p = scores[h][t - t_begin];
#pragma unroll
      for (int j = 0; j < DPL; ++j) acc[h][j] = fmaf(p, v[j], acc[h][j]);
    }
  }
  // Reduce over the 4 groups of a warp, then over the warps.
#pragma unroll
  for (int h = 0; h < HC; ++h)
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
      acc[h][j] += __shfl_xor_sync(0xffffffffu, acc[h][j], 8);
      acc[h][j] += __shfl_xor_sync(0xffffffffu, acc[h][j], 16);
    }
  if (lane < 8)
#pragma unroll
    for (int h = 0; h < HC; ++h)
#pragma unroll
      for (int j = 0; j < DPL; ++j) red[warp][h][lane * DPL + j] = acc[h][j];
  __syncthreads();
  for (int e = threadIdx.x; e < nh * D; e += kDecodeThreads) {
    const int h = e / D, d = e % D;
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeThreads / 32; ++w) s += red[w][h][d];
    Partial::at(ws, i, h0 + h, split, H, n_splits, D)[2 + d] = s;
  }
}

// Prefill: block (query tile, head, split). Shared memory (fp32): Q [32][Dp], K transposed [Dp][33], V [32][D],
// P [4 warps][8][32]; Dp = D rounded up to 4 (the padding is zero).
template <int DC, class KV>
__global__ void __launch_bounds__(kPrefillThreads)
    attention_prefill_kernel(const float* __restrict__ q, const KV* __restrict__ kc, const KV* __restrict__ vc,
                             int n, int pos0, const int* __restrict__ pos0_dev, int H, int KVH, int D, float scale,
                             int span, int n_splits, float* __restrict__ ws) {
  extern __shared__ float smem[];
  const int Dp = (D + 3) & ~3;
  float* qs = smem;                    // [kQTile][Dp]
  float* kt = qs + kQTile * Dp;        // [Dp][kKTile + 1]
  float* vs = kt + Dp * (kKTile + 1);  // [kKTile][D]
  float* ps = vs + kKTile * D;         // [warps][kRowsPerWarp][kKTile]

  const int h = blockIdx.y, kvh = h / (H / KVH), split = blockIdx.z;
  const int i0 = blockIdx.x * kQTile;
  const int p0 = pos0_dev ? *pos0_dev : pos0;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int last_query = min(n, i0 + kQTile) - 1;
  const int t_begin = split * span;
  const int t_end = min(t_begin + span, p0 + last_query + 1);
  if (t_begin >= t_end) return;

  for (int e = threadIdx.x; e < kQTile * Dp; e += kPrefillThreads) {
    const int r = e / Dp, d = e % Dp, i = i0 + r;
    qs[e] = (i < n && d < D) ? q[(size_t(i) * H + h) * D + d] * scale : 0.0f;
  }
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DC];
  int qpos[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    const int i = i0 + warp * kRowsPerWarp + r;
    qpos[r] = i < n ? p0 + i : -1;
#pragma unroll
    for (int c = 0; c < DC; ++c) acc[r][c] = 0.0f;
  }
  const size_t row_stride = size_t(KVH) * D;
  float* pw = ps + warp * kRowsPerWarp * kKTile;

  for (int t0 = t_begin; t0 < t_end; t0 += kKTile) {
    __syncthreads();  // the previous tile is fully used
    for (int e = threadIdx.x; e < kKTile * Dp; e += kPrefillThreads) {
      const int j = e / Dp, d = e % Dp, t = t0 + j;
      const bool ok = t < t_end && d < D;
      const size_t off = size_t(t) * row_stride + size_t(kvh) * D + d;
      kt[d * (kKTile + 1) + j] = ok ? load_kv(kc + off) : 0.0f;
      if (d < D) vs[j * D + d] = ok ? load_kv(vc + off) : 0.0f;
    }
    __syncthreads();
    // Scores: lane = position t0 + lane, one per row.
    float s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = 0.0f;
    for (int d = 0; d < Dp; d += 4) {
      const float k0 = kt[d * (kKTile + 1) + lane], k1 = kt[(d + 1) * (kKTile + 1) + lane];
      const float k2 = kt[(d + 2) * (kKTile + 1) + lane], k3 = kt[(d + 3) * (kKTile + 1) + lane];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float4 qv = *reinterpret_cast<const float4*>(qs + (warp * kRowsPerWarp + r) * Dp + d);
        s[r] = fmaf(qv.x, k0, fmaf(qv.y, k1, fmaf(qv.z, k2, fmaf(qv.w, k3, s[r]))));
      }
    }
    const int t = t0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float sr = (t < t_end && t <= qpos[r]) ? s[r] : -INFINITY;
      float mt = sr;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float m_new = fmaxf(m[r], mt);
      // A row with nothing valid yet keeps m = -inf; exp(-inf - -inf) would be NaN.
      const float p = m_new == -INFINITY ? 0.0f : expf(sr - m_new);
      const float alpha = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
      float psum = p;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
      l[r] = l[r] * alpha + psum;
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < DC; ++c) acc[r][c] *= alpha;
      pw[r * kKTile + lane] = p;
    }
    __syncwarp();
    for (int j = 0; j < kKTile; j += 4) {
      float v[4][DC];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj)
#pragma unroll
        for (int c = 0; c < DC; ++c) v[jj][c] = (lane + 32 * c < D) ? vs[(j + jj) * D + lane + 32 * c] : 0.0f;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float4 p4 = *reinterpret_cast<const float4*>(pw + r * kKTile + j);
#pragma unroll
        for (int c = 0; c < DC; ++c)
          acc[r][c] = fmaf(p4.x, v[0][c], fmaf(p4.y, v[1][c], fmaf(p4.z, v[2][c], fmaf(p4.w, v[3][c], acc[r][c]))));
      }
    }
    __syncwarp();
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = i0 + warp * kRowsPerWarp + r;
    if (qpos[r] < t_begin) continue;  // no position of this split is visible to this query (or no query)
    float* part = Partial::at(ws, i, h, split, H, n_splits, D);
    if (lane == 0) {
      part[0] = m[r];
      part[1] = l[r];
    }
#pragma unroll
    for (int c = 0; c < DC; ++c)
      if (lane + 32 * c < D) part[2 + lane + 32 * c] = acc[r][c];
  }
}

// out[i, h, :] from the splits that hold positions of token i: log-sum-exp weights exp(m_s - M). The
// threads share the per-split work (max, weights, sum) and keep the weights in shared memory; then each
// warp sums every kCombineWarps-th split over all dims (independent loads, many in flight) and the warps'
// sums are added in shared memory. At 32K tokens (129 splits) a thread per dim walking every split took
// 25 us a layer.
constexpr int kCombineThreads = 256, kCombineWarps = kCombineThreads / 32;
static_assert(kCombineThreads == attn2::kCombineThreads, "the combines share attn2::combine_weights");
__global__ void __launch_bounds__(kCombineThreads)
    attention_combine_kernel(const float* __restrict__ ws, int pos0, const int* __restrict__ pos0_dev, int H, int D,
                             int span, int n_splits, float* __restrict__ out) {
  pdl_allow_dependents();  // the output projection may start loading its weights
  extern __shared__ float smem[];  // weight[n_splits], then sums[kCombineWarps][D]
  float* weight = smem;
  float* sums = smem + n_splits;
  __shared__ float red[32];
  const int h = blockIdx.x, i = blockIdx.y;
  const int len = (pos0_dev ? *pos0_dev : pos0) + i + 1;
  const int valid = min(n_splits, (len + span - 1) / span);
  const size_t stride = size_t(D + 2);
  const float* base = ws + (size_t(i) * H + h) * n_splits * stride;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  const float L = attn2::combine_weights(base, stride, valid, weight, red);
  const float inv = 1.0f / L;

  for (int d = lane; d < D; d += 32) {
    float o = 0.0f;
#pragma unroll 4
    for (int s = warp; s < valid; s += kCombineWarps) o = fmaf(weight[s], base[s * stride + 2 + d], o);
    sums[warp * D + d] = o;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < kCombineWarps; ++w) o += sums[w * D + d];
    out[(size_t(i) * H + h) * D + d] = o * inv;
  }
}

struct Plan {
  bool decode;
  int span, n_splits;
};

Plan plan(int n, const AttentionShape& s, int max_len, int sm_count) {
  if (n <= kDecodeMaxTokens) return {true, kSpan, (max_len + kSpan - 1) / kSpan};
  // Prefill: enough splits of the cache for about four blocks per multiprocessor.
  const int q_tiles = (n + kQTile - 1) / kQTile;
  const int blocks = q_tiles * s.n_heads;
  const int want = std::max(1, (4 * std::max(sm_count, 1) + blocks - 1) / blocks);
  int span = (max_len + want - 1) / want;
  span = std::max(256, (span + kKTile - 1) / kKTile * kKTile);
  return {false, span, (max_len + span - 1) / span};
}

template <int DPL, int HC, bool kExact, class KV>
void launch_decode(const AttentionArgs& a, const Plan& p, cudaStream_t st) {
  const int group = a.s.n_heads / a.s.n_kv_heads;
  const dim3 grid(unsigned(a.s.n_kv_heads * ((group + HC - 1) / HC)), unsigned(p.n_splits), unsigned(a.n));
  // 2 rows in flight with unconstrained registers (4 blocks a multiprocessor) measured best on the H100 at
  // 32K: 4 rows, or 6 blocks forced by launch bounds (spills), were 6-30% slower.
  auto kernel = attention_decode_kernel<DPL, HC, kExact, KV, 2>;
  kernel<<<grid, kDecodeThreads, 0, st>>>(a.q, static_cast<const KV*>(a.k), static_cast<const KV*>(a.v), a.pos0,
                                          a.pos0_dev, a.s.n_heads, a.s.n_kv_heads, a.s.head_dim, a.s.scale,
                                          p.n_splits, a.workspace);
  check_launch("attention_decode");
}

// The grid's x extent of the version-2 decode kernel (KV heads x chunks of query heads).
unsigned decode_v2_blocks_x(const AttentionShape& s) {
  const int group = s.n_heads / s.n_kv_heads;
  return unsigned(s.n_kv_heads * ((group + attn2::kHC - 1) / attn2::kHC));
}

template <class KV, int D, bool kMerge>
void launch_decode_v2(const AttentionArgs& a, const Plan& p, cudaStream_t st) {
  const dim3 grid(decode_v2_blocks_x(a.s), unsigned(p.n_splits), unsigned(a.n));
  const auto kernel = attn2::decode_kernel<KV, D, kMerge>;
  // Six blocks of 37 KB a multiprocessor need the largest shared-memory carveout: asked for once per device
  // (before any graph capture: the first decode steps run eagerly).
  static std::atomic<uint64_t> carveout_set{0};
  int dev = 0;
  FKV_CUDA_CHECK(cudaGetDevice(&dev), "reading the current device");
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (bit && !(carveout_set.load(std::memory_order_relaxed) & bit)) {
    FKV_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                        int(cudaSharedmemCarveoutMaxShared)),
                   "preferring shared memory for the decode attention kernel");
    carveout_set.fetch_or(bit, std::memory_order_relaxed);
  }
  launch_programmatic(kernel, kMerge ? "attention_decode_v2 (merged)" : "attention_decode_v2", grid,
                      dim3(attn2::kThreads), st, true, a.q, static_cast<const KV*>(a.k),
                      static_cast<const KV*>(a.v), a.pos0, a.pos0_dev, a.s.n_heads, a.s.n_kv_heads, a.s.scale,
                      p.n_splits, a.workspace, a.out, a.merge_counters);
}

// Splits a decode launch merges itself at most. The last block walks the splits in rounds of loads, which
// costs more than a combine launch once there are many: H100, 8B shape, same call, Q4_0 decode 289.5 / 169.2
// t/s at depth 0 / 32K merged in the kernel against 281.5 / 184.9 with the combine launch (128 splits at
// 32K; the merged attention 77.9 against 62.5 us a layer). Short caches (up to 16 splits: 4096 positions,
// the whole cache of a graph) keep the saved launch.
constexpr int kMergeLastMaxSplits = 16;

// Whether a decode launch merges its splits itself (kMerge): version 2, head_dim 64 or 128, the backend's
// counters cover the grid, the last block's shared memory holds every split's weights, and the splits are
// few (kMergeLastMaxSplits).
bool merges_in_decode(const AttentionArgs& a, const Plan& p) {
  const int D = a.s.head_dim;
  return p.decode && attention_version_now() == 2 && merge_last_now() && (D == 64 || D == 128) &&
         a.merge_counters && int64_t(a.n) * decode_v2_blocks_x(a.s) <= a.n_merge_counters &&
         p.n_splits <= std::min(attn2::kMergeMaxSplits, kMergeLastMaxSplits);
}

template <class KV>
void decode(const AttentionArgs& a, const Plan& p, cudaStream_t st) {
  const int D = a.s.head_dim;
  if (merges_in_decode(a, p)) {
    if (D == 128) return launch_decode_v2<KV, 128, true>(a, p, st);
    return launch_decode_v2<KV, 64, true>(a, p, st);
  }
  if (attention_version_now() == 2) {
    if (D == 128) return launch_decode_v2<KV, 128, false>(a, p, st);
    if (D == 64) return launch_decode_v2<KV, 64, false>(a, p, st);
  }
  if (D == 128) return launch_decode<16, 4, true, KV>(a, p, st);
  if (D == 64) return launch_decode<8, 4, true, KV>(a, p, st);
  return launch_decode<32, 1, false, KV>(a, p, st);
}

template <int DC, class KV>
void launch_prefill(const AttentionArgs& a, const Plan& p, cudaStream_t st) {
  const int D = a.s.head_dim, Dp = (D + 3) & ~3;
  const size_t smem =
      sizeof(float) * (size_t(kQTile) * Dp + size_t(Dp) * (kKTile + 1) + size_t(kKTile) * D +
                       size_t(kPrefillThreads / 32) * kRowsPerWarp * kKTile);
  auto kernel = attention_prefill_kernel<DC, KV>;
  FKV_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                 "raising the prefill attention kernel's shared memory limit");
  const dim3 grid(unsigned((a.n + kQTile - 1) / kQTile), unsigned(a.s.n_heads), unsigned(p.n_splits));
  kernel<<<grid, kPrefillThreads, smem, st>>>(a.q, static_cast<const KV*>(a.k), static_cast<const KV*>(a.v), a.n,
                                              a.pos0, a.pos0_dev, a.s.n_heads, a.s.n_kv_heads, D, a.s.scale,
                                              p.span, p.n_splits, a.workspace);
  check_launch("attention_prefill");
}

template <class KV>
void prefill(const AttentionArgs& a, const Plan& p, cudaStream_t st) {
  const int D = a.s.head_dim;
  if (D <= 64) return launch_prefill<2, KV>(a, p, st);
  if (D <= 128) return launch_prefill<4, KV>(a, p, st);
  return launch_prefill<8, KV>(a, p, st);
}

}  // namespace

void set_attention_version(int version) {
  g_attention_version.store(version, std::memory_order_relaxed);
}

void set_attention_merge_last(int on) {
  g_merge_last.store(on < 0 ? -1 : on != 0, std::memory_order_relaxed);
}

int attention_version() {
  return attention_version_now();
}

size_t attention_workspace_floats(int n, const AttentionShape& s, int max_len, int sm_count) {
  const Plan p = plan(n, s, max_len, sm_count);
  return size_t(n) * s.n_heads * size_t(p.n_splits) * size_t(s.head_dim + 2);
}

void attention(const AttentionArgs& a, int sm_count, cudaStream_t st) {
  require(a.s.head_dim > 0 && a.s.head_dim <= 256, ErrorCode::kUnsupported,
          "CUDA attention supports head_dim up to 256, not " + std::to_string(a.s.head_dim));
  require(a.s.n_kv_heads > 0 && a.s.n_heads % a.s.n_kv_heads == 0, ErrorCode::kInvalidArgument,
          "attention: n_heads must be a multiple of n_kv_heads");
  if (a.n == 0) return;
  const Plan p = plan(a.n, a.s, a.max_len, sm_count);
  if (p.decode)
    a.f16 ? decode<__half>(a, p, st) : decode<float>(a, p, st);
  else
    a.f16 ? prefill<__half>(a, p, st) : prefill<float>(a, p, st);
  if (merges_in_decode(a, p)) return;  // the decode kernel wrote out
  if (attention_version_now() == 2) {
    const size_t bytes = sizeof(float) * size_t(p.n_splits);
    if (bytes > 40 * 1024)
      throw Error(ErrorCode::kUnsupported, "CUDA attention: context too long for the split merge (" +
                                               std::to_string(p.n_splits) + " splits)");
    const unsigned chunks = unsigned((a.s.head_dim + attn2::kCombineDims - 1) / attn2::kCombineDims);
    attn2::combine_kernel<<<dim3(unsigned(a.s.n_heads), unsigned(a.n), chunks), attn2::kCombineThreads, bytes,
                            st>>>(a.workspace, a.pos0, a.pos0_dev, a.s.n_heads, a.s.head_dim, p.span,
                                  p.n_splits, a.out);
    return check_launch("attention_combine_v2");
  }
  const size_t combine_bytes = sizeof(float) * (size_t(p.n_splits) + size_t(kCombineWarps) * a.s.head_dim);
  if (combine_bytes > 48 * 1024)
    throw Error(ErrorCode::kUnsupported, "CUDA attention: context too long for the split merge (" +
                                             std::to_string(p.n_splits) + " splits)");
  attention_combine_kernel<<<dim3(unsigned(a.s.n_heads), unsigned(a.n)), kCombineThreads, combine_bytes, st>>>(
      a.workspace, a.pos0, a.pos0_dev, a.s.n_heads, a.s.head_dim, p.span, p.n_splits, a.out);
  check_launch("attention_combine");
}

}  // namespace fkv::cuda
