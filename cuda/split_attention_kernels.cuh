// The direct (decode) split-attention kernels of split_attention.cu, in a header so that a host test can
// compile the same code against a thread emulation (tests/cuda/split_attention_emulation_test.cpp) and check
// it without a GPU. Device code only uses what that emulation provides: threadIdx/blockIdx, __syncthreads,
// __shfl_xor_sync, atomicAdd on shared floats, __brev, static and dynamic (FKV_DYN_SMEM) shared memory.
#pragma once
#include <algorithm>
#include <cmath>

#include "split_chirp.h"
#include "split_kv.h"
#include "split_kv_device.cuh"
#include "warp_softmax.cuh"

// #pragma unroll for nvcc only (a host compiler warns about it and GCC cannot silence that from a pragma).
#if defined(__CUDACC__)
#define FKV_UNROLL _Pragma("unroll")
#else
#define FKV_UNROLL
#endif

#ifndef FKV_DYN_SMEM
#define FKV_DYN_SMEM(name) extern __shared__ __align__(16) float name[]
#endif

namespace fkv::cuda {
namespace splitattn {
namespace {  // each includer (the .cu, the host emulation test) has its own copy

using namespace splitkv;

constexpr int kThreads = 256;
// split_combine_kernel: its block size over a fitted middle (one block per query head and token walks the
// middle's H partials and the compressed dims' coefficients: the more threads, the shorter the walks; H100,
// 8B shape, 32K, N 512: 73 us a layer with 256 threads, 37 with 1024), and the loads in flight per thread
// in its sums over splits. Without a fitted middle the walks are short and 256 threads start sooner (1024
// cost ~1% of decode speed at depth 0).
constexpr int kCombineThreads = 1024;
constexpr int kCombineAhead = 8;
inline int combine_threads(bool fitted_middle) { return fitted_middle ? kCombineThreads : kThreads; }
constexpr int kHC = 4;  // query heads per block (the group's heads share its rows and basis values)
// chirp-z buffers transformed side by side (query heads at a time). 1: the main kernel's shared memory stays
// under 60 KB (the H100 failures of the first chirp version all had more; docs/CUDA.md).
constexpr int kChirpPair = 1;
constexpr int kSpanExact = 256;  // rows per split of the sink, window and chunk
// Rows per split of the middle, at most (per-row path): its scores take 16 bytes a row of shared memory.
constexpr int kMaxSpanMid = 1024;

// FFT entries (query heads x columns x N) of a column block of the middle (L.fft).
constexpr int kFftEntries = 2048;

struct Plan {
  int hchunks = 1, span_m = kSpanExact, span_max = kSpanExact;
  // L.fft: the middle's splits are column blocks of col_vb columns, rows {v + R·u} (R = T/N), span_m = col_vb·N
  int col_vb = 0, col_logn = 0;
  int n_sink = 0, n_mid = 0, n_win = 0, n_chunk = 0, n_total = 0;
};

int cdiv(int a, int b) {
  return (a + b - 1) / b;
}

Plan make_plan(const SplitLayerDev& L, int n, int n_heads, int sm_count) {
  Plan p;
  const int group = n_heads / L.kvh;
  p.hchunks = cdiv(group, kHC);
  p.n_sink = cdiv(L.S, kSpanExact);
  p.n_win = cdiv(L.W, kSpanExact);
  p.n_chunk = cdiv(n, kSpanExact);
  if (L.T > 0 && L.fft) {
    p.col_vb = std::max(1, kFftEntries / (kHC * L.N));
    while ((1 << p.col_logn) < L.N) ++p.col_logn;
    p.span_m = p.col_vb * L.N;
    p.n_mid = cdiv(L.T / L.N, p.col_vb);
  } else if (L.T > 0 && L.chirp) {
    p.span_m = chirp_span(L.N);  // one chirp-z convolution of kChirpF points per span
    p.n_mid = cdiv(L.T, p.span_m);
  } else if (L.T > 0) {
    // About two blocks per multiprocessor over the middle.
    const int want = std::max(1, 2 * std::max(sm_count, 1) / std::max(1, L.kvh * p.hchunks));
    int span = cdiv(L.T, want);
    span = std::min(kMaxSpanMid, std::max(kSpanExact, cdiv(span, kSpanExact) * kSpanExact));
    p.span_m = span;
    p.n_mid = cdiv(L.T, span);
  }
  p.span_max = std::max(kSpanExact, p.span_m);
  p.n_total = p.n_sink + p.n_mid + p.n_win + p.n_chunk;
  return p;
}

struct Layout {
  size_t part = 0, hpart = 0, z = 0, cst = 0, u = 0, total = 0;  // float offsets
};

size_t round4(size_t x) {
  return (x + 3) & ~size_t(3);
}

Layout layout(const SplitLayerDev& L, const Plan& p, int n, int n_heads) {
  Layout w;
  const size_t heads = size_t(n) * n_heads;
  w.part = 0;
  w.hpart = round4(heads * p.n_total * size_t(L.d + 2));
  w.z = w.hpart + round4(heads * p.n_mid * size_t(2) * L.N);
  w.cst = w.z + round4(L.T > 0 ? heads * size_t(2) * L.N : 0);
  w.u = w.cst + round4(heads);
  w.total = w.u + (L.chirp ? heads * size_t(2) * kChirpF : 0);
  return w;
}

size_t main_smem_bytes(const SplitLayerDev& L, const Plan& p) {
  return sizeof(float) * (size_t(2) * kHC * L.d + size_t(p.span_max) * kHC +
                          (L.T > 0 && !L.chirp && !p.col_vb ? size_t(2) * L.N * kHC : 0) + kHC +
                          (L.chirp ? size_t(2 * kChirpPair) * kChirpF : 0) +
                          (p.col_vb ? size_t(2) * kHC * p.span_m : 0));
}

size_t combine_smem_bytes(const SplitLayerDev& L, const Plan& p) {
  return sizeof(float) * (size_t(p.n_total) + L.d + (L.T > 0 ? size_t(2) * L.N : 0) + 64);
}

// The bit-reversal permutation of `count` buffers of 2^logn points each (x, x + 2^logn, ...), in place by the
// whole block, between two barriers.
__device__ void block_bit_reverse(float2* x, int count, int logn) {
  const int n = 1 << logn;
  __syncthreads();
  for (int e = threadIdx.x; e < count * n; e += kThreads) {
    const int i = e & (n - 1), j = int(__brev(unsigned(i)) >> (32 - logn));
    if (i < j) {
      float2* xb = x + (e - i);
      const float2 t = xb[i];
      xb[i] = xb[j];
      xb[j] = t;
    }
  }
  __syncthreads();
}

// In-place FFTs of `count` buffers of kChirpF points each (x, x + kChirpF, ...) in shared memory by the
// whole block, side by side so that they share the barriers (radix-2, decimation in time after a bit
// reversal; the butterflies of split_chirp.h). plus: the e^{+2πi/F} direction, unscaled. Starts and ends
// with a barrier, so the buffers may be written just before and read just after.
__device__ void block_fft(float2* x, int count, const float2* tw, bool plus) {
  block_bit_reverse(x, count, kChirpLogF);
  for (int half = 1; half < kChirpF; half <<= 1) {
    for (int e = threadIdx.x; e < count * (kChirpF / 2); e += kThreads)
      chirp_butterfly(x + size_t(e / (kChirpF / 2)) * kChirpF, half, tw, plus, e & (kChirpF / 2 - 1));
    __syncthreads();
  }
}

// In-place N-point transforms Σ_k x[k] e^{2πi jk/N} of `count` buffers x, x + N, ... (N = 2^logn >= 2) by the
// whole block: the bit-reversal permutation, then radix-2 decimation in time with the twiddles read from the
// basis table (table[k·R] = e^{2πi k/N}, R = T/N). Starts and ends with a barrier.
__device__ void block_dft_pow2(float2* x, int count, int logn, const float2* table, int R) {
  const int N = 1 << logn;
  block_bit_reverse(x, count, logn);
  for (int s = 0; s < logn; ++s) {
    const int half = 1 << s;
    for (int b = threadIdx.x; b < count * (N / 2); b += kThreads) {
      const int f = b >> (logn - 1), j = b & (N / 2 - 1), k = j & (half - 1);
      float2* xb = x + size_t(f) * N;
      const int i0 = ((j >> s) << (s + 1)) + k, i1 = i0 + half;
      const float2 c = chirp_cmul(xb[i1], table[size_t(k << (logn - 1 - s)) * R]), a = xb[i0];
      xb[i0] = make_float2(a.x + c.x, a.y + c.y);
      xb[i1] = make_float2(a.x - c.x, a.y - c.y);
    }
    __syncthreads();
  }
}

struct DirectArgs {
  SplitLayerDev L;
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int n, pos0;
  const int* p0_dev;
  int H;
  float scale;
  bool fitted;
  Plan plan;
  float* part;   // [n, H, n_total, D + 2]: max, sum, unnormalised output
  float* hpart;  // [n, H, n_mid, 2N]: Σ_m P_m cos, then Σ_m P_m sin, per middle split
  float2* z;     // [n, H, N]
  float2* u;     // chirp-z: [n, H, kChirpF], the spectrum of z·e^{iπn²/T} (the same for every span)
  float* cst;    // [n, H]
};

// z and the constant Σ_j q_j b_j of each query head whose KV head has compressed K dims (fitted middle).
// Block: one KV head, up to kHC of its query heads, kPrepFreqs frequencies, one query; its 8 warps split the
// compressed dims (a warp reads 32 consecutive coefficients of a dim), then add their sums in shared memory.
constexpr int kPrepFreqs = 32, kPrepGroups = kThreads / kPrepFreqs;
__global__ void __launch_bounds__(kThreads) split_prep_kernel(DirectArgs a) {
  __shared__ float qa[kHC][256], qb[kHC][256];
  __shared__ float part[kPrepGroups][kPrepFreqs][2 * kHC];
  const SplitLayerDev& L = a.L;
  const int D = L.d, group = a.H / L.kvh;
  const int kvh = blockIdx.x / a.plan.hchunks, hc = blockIdx.x % a.plan.hchunks;
  const int h0 = kvh * group + hc * kHC, nh = min(kHC, group - hc * kHC);
  const int i = blockIdx.z, N = L.N;
  const Dims dk{L.k.dims, L.kvh, L.k.nk};
  const int c0 = dk.comp_offset(kvh), ncg = dk.comp_offset(kvh + 1) - c0;
  for (int e = threadIdx.x; e < kHC * ncg; e += kThreads) {
    const int h = e / ncg, j = e % ncg;
    const float2 ab = norm_ab(L.k.norm, c0 + j);
    const float qv = h < nh ? a.q[(size_t(i) * a.H + h0 + h) * D + dk.comp(c0 + j)] : 0.0f;
    qa[h][j] = qv * ab.x;
    qb[h][j] = qv * ab.y;
  }
  __syncthreads();
  const int f = threadIdx.x % kPrepFreqs, grp = threadIdx.x / kPrepFreqs;
  const int nn = blockIdx.y * kPrepFreqs + f;
  float gc[kHC] = {0, 0, 0, 0}, gs[kHC] = {0, 0, 0, 0};
  if (nn < N) {
    const size_t two_n = size_t(2) * N;
    for (int j = grp; j < ncg; j += kPrepGroups) {
      const float* cr = L.k.coef + size_t(c0 + j) * two_n;
      const float cv = cr[nn], sv = cr[N + nn];
      FKV_UNROLL
      for (int h = 0; h < kHC; ++h) {
        gc[h] = fmaf(qa[h][j], cv, gc[h]);
        gs[h] = fmaf(qa[h][j], sv, gs[h]);
      }
    }
  }
  FKV_UNROLL
  for (int h = 0; h < kHC; ++h) {
    part[grp][f][h] = gc[h];
    part[grp][f][kHC + h] = gs[h];
  }
  __syncthreads();
  if (grp == 0 && nn < N) {
    float c[kHC] = {0, 0, 0, 0}, s[kHC] = {0, 0, 0, 0};
    for (int g = 0; g < kPrepGroups; ++g) FKV_UNROLL
    for (int h = 0; h < kHC; ++h) {
      c[h] += part[g][f][h];
      s[h] += part[g][f][kHC + h];
    }
    const float wn = (nn == 0 ? 0.5f : 1.0f) / float(N) * a.scale;
    for (int h = 0; h < nh; ++h) a.z[(size_t(i) * a.H + h0 + h) * N + nn] = make_float2(wn * c[h], wn * s[h]);
  }
  if (blockIdx.y == 0 && int(threadIdx.x) < nh) {
    float c = 0.0f;
    for (int j = 0; j < ncg; ++j) c += qb[threadIdx.x][j];
    a.cst[size_t(i) * a.H + h0 + threadIdx.x] = c * a.scale;
  }
}

// Chirp-z: U = FFT(z_n e^{iπn²/T}, zero-padded to kChirpF) of each query head whose KV head has compressed K
// dims; every middle span's score convolution starts from it. Block: one query head of one query.
__global__ void __launch_bounds__(kThreads) split_uspec_kernel(DirectArgs a) {
  __shared__ float2 buf[kChirpF];
  const SplitLayerDev& L = a.L;
  const float2* tw = L.chirp_twiddle;  // read through the cache, not staged
  const int h = blockIdx.x, i = blockIdx.y, N = L.N, kvh = h / (a.H / L.kvh);
  const Dims dk{L.k.dims, L.kvh, L.k.nk};
  if (dk.comp_offset(kvh + 1) == dk.comp_offset(kvh)) return;  // no compressed K dims: U is not read
  const float2* z = a.z + (size_t(i) * a.H + h) * N;
  for (int j = threadIdx.x; j < kChirpF; j += kThreads) {
    float2 x = make_float2(0.0f, 0.0f);
    if (j < N) x = chirp_cmul(make_float2(z[j].x, -z[j].y), L.chirp_n[j]);
    buf[j] = x;
  }
  block_fft(buf, 1, tw, false);
  float2* u = a.u + (size_t(i) * a.H + h) * kChirpF;
  for (int k = threadIdx.x; k < kChirpF; k += kThreads) u[k] = buf[k];
}

// One span of one part for kHC query heads (file comment). Shared memory: q [kHC][D] (middle: kept dims
// then pending dims, in the order of the cache's rows), output [kHC][D], scores/weights [span][kHC],
// z [N][kHC], constants [kHC].
__global__ void __launch_bounds__(kThreads) split_main_kernel(DirectArgs a) {
  FKV_DYN_SMEM(smem);
  const SplitLayerDev& L = a.L;
  const int D = L.d, H = a.H, group = H / L.kvh, row_len = L.row_len(), N = L.N;
  const int kvh = blockIdx.x / a.plan.hchunks, hc = blockIdx.x % a.plan.hchunks;
  const int h0 = kvh * group + hc * kHC, nh = min(kHC, group - hc * kHC);
  const int split = blockIdx.y, i = blockIdx.z;
  const int p0 = a.p0_dev ? *a.p0_dev : a.pos0;
  const Plan& pl = a.plan;

  int part, ls;
  if (split < pl.n_sink) {
    part = 0;
    ls = split;
  } else if (split < pl.n_sink + pl.n_mid) {
    part = 1;
    ls = split - pl.n_sink;
  } else if (split < pl.n_sink + pl.n_mid + pl.n_win) {
    part = 2;
    ls = split - pl.n_sink - pl.n_mid;
  } else {
    part = 3;
    ls = split - pl.n_sink - pl.n_mid - pl.n_win;
  }
  const int wb = L.window_begin(p0);
  const int count = part == 0   ? L.sink_len(p0)
                    : part == 1 ? L.middle_len(p0)
                    : part == 2 ? max(0, p0 - wb)
                                : i + 1;
  const int span = part == 1 ? pl.span_m : kSpanExact;
  // A split's rows: r0 + j for j < rows, or for a column block of the middle (L.fft) the rows v + R·u of
  // columns v0 .. v0 + VB - 1, local row j = u·VB + (v - v0) (row_of gives -1 past the middle).
  const bool colblk = part == 1 && pl.col_vb > 0;
  const int VB = pl.col_vb, R = colblk ? L.T / N : 0, v0 = ls * VB;
  const int r0 = colblk ? 0 : ls * span, r1 = colblk ? 0 : min(r0 + span, count);
  const int rows = colblk ? (v0 < min(R, count) ? VB * N : 0) : max(0, r1 - r0);
  auto row_of = [&](int j) -> int {
    if (!colblk) return r0 + j;
    const int v = v0 + j % VB, m = v + R * (j / VB);
    return v < R && m < count ? m : -1;
  };
  auto part_out = [&](int h) {
    return a.part + ((size_t(i) * H + h0 + h) * pl.n_total + split) * size_t(D + 2);
  };
  if (rows <= 0) {  // nothing of this part in this span: an empty partial, skipped by the combine
    if (int(threadIdx.x) < nh) {
      part_out(threadIdx.x)[0] = -INFINITY;
      part_out(threadIdx.x)[1] = 0.0f;
    }
    return;
  }

  float* qs = smem;
  float* accs = qs + kHC * D;
  float* sc = accs + kHC * D;
  float2* zs = reinterpret_cast<float2*>(sc + size_t(pl.span_max) * kHC);
  // zs: the per-row path's z only
  float* csts = reinterpret_cast<float*>(zs + (L.T > 0 && !L.chirp && !pl.col_vb ? size_t(N) * kHC : 0));
  // chirp-z: kChirpPair buffers of kChirpF points; the twiddles are read from the table (cached). Column
  // blocks (L.fft): kHC·VB buffers of N points.
  float2* fbuf = reinterpret_cast<float2*>(csts + kHC);
  const float2* tw = L.chirp_twiddle;
  const float inv_f = 1.0f / float(kChirpF);

  const Dims dk{L.k.dims, L.kvh, L.k.nk}, dv{L.v.dims, L.kvh, L.v.nk};
  int k0 = 0, nkg = 0, c0 = 0, ncg = 0;
  if (part == 1) {
    k0 = dk.keep_offset(kvh);
    nkg = dk.keep_offset(kvh + 1) - k0;
    c0 = dk.comp_offset(kvh);
    ncg = dk.comp_offset(kvh + 1) - c0;
  }
  const bool spectral = part == 1 && a.fitted && ncg > 0;
  for (int e = threadIdx.x; e < kHC * D; e += kThreads) {
    const int h = e / D, c = e % D;
    int dim = c;
    if (part == 1) dim = c < nkg ? dk.keep(k0 + c) : c < nkg + ncg ? dk.comp(c0 + c - nkg) : -1;
    qs[e] = (h < nh && dim >= 0) ? a.q[(size_t(i) * H + h0 + h) * D + dim] * a.scale : 0.0f;
    accs[e] = 0.0f;
  }
  if (spectral) {
    for (int e = threadIdx.x; e < (L.chirp || pl.col_vb ? 0 : N * kHC); e += kThreads) {  // the per-row path's z
      const int nn = e / kHC, h = e % kHC;
      zs[e] = h < nh ? a.z[(size_t(i) * H + h0 + h) * N + nn] : make_float2(0.0f, 0.0f);
    }
    if (threadIdx.x < kHC)
      csts[threadIdx.x] = int(threadIdx.x) < nh ? a.cst[size_t(i) * H + h0 + threadIdx.x] : 0.0f;
  }
  __syncthreads();

  // The exact row r of the sink, the window ring or the chunk (head kvh): element j.
  auto exact_k = [&](int r, int j) -> float {
    if (part == 0) return load_val(L.k.sink, size_t(r) * row_len + size_t(kvh) * D + j, L.f16);
    if (part == 2)
      return load_val(L.k.window, size_t((wb + r - L.S) % L.W) * row_len + size_t(kvh) * D + j, L.f16);
    return round_to(L.f16, a.k[size_t(r) * row_len + size_t(kvh) * D + j]);
  };
  auto exact_v = [&](int r, int j) -> float {
    if (part == 0) return load_val(L.v.sink, size_t(r) * row_len + size_t(kvh) * D + j, L.f16);
    if (part == 2)
      return load_val(L.v.window, size_t((wb + r - L.S) % L.W) * row_len + size_t(kvh) * D + j, L.f16);
    return round_to(L.f16, a.v[size_t(r) * row_len + size_t(kvh) * D + j]);
  };

  // The fitted middle's score part of a column block by FFTs: column v's rows v + R·u score
  // Re Σ_n Z_v[n] e^{2πi nu/N}, Z_v[n] = (z.x − i·z.y) e^{2πi nv/T} (docs/CUDA.md), into fbuf[head][column][u].
  const bool col_fft = colblk && spectral;
  if (col_fft) {
    for (int e = threadIdx.x; e < kHC * VB * N; e += kThreads) {
      const int nn = e & (N - 1), f = e >> pl.col_logn, h = f / VB, v = v0 + f % VB;
      float2 zv = make_float2(0.0f, 0.0f);
      if (h < nh && v < R) {
        const float2 z = a.z[(size_t(i) * H + h0 + h) * N + nn];
        zv = chirp_cmul(make_float2(z.x, -z.y), L.table[size_t(nn) * v]);
      }
      fbuf[e] = zv;
    }
    block_dft_pow2(fbuf, kHC * VB, pl.col_logn, L.table, R);
  }

  // The fitted middle's score part of the whole span by chirp-z (split_chirp.h), into sc, head by head.
  const bool chirp = spectral && L.chirp;
  if (chirp) {
    const float2* seg = L.chirp_seg + size_t(ls) * kChirpF;
    for (int h = 0; h < nh; h += kChirpPair) {
      const int cnt = min(kChirpPair, nh - h);
      const float2* u = a.u + (size_t(i) * H + h0 + h) * kChirpF;  // heads h, h + 1: consecutive in a.u
      for (int e = threadIdx.x; e < cnt * kChirpF; e += kThreads)
        fbuf[e] = chirp_cmul(u[e], seg[e & (kChirpF - 1)]);
      block_fft(fbuf, cnt, tw, true);
      for (int e = threadIdx.x; e < cnt * rows; e += kThreads) {
        const int q = e / rows, r = e % rows;
        sc[size_t(r) * kHC + h + q] =
            chirp_cmul(L.chirp_m[r0 + r], fbuf[size_t(q) * kChirpF + r + N - 1]).x * inv_f;
      }
      __syncthreads();  // fbuf is refilled for the next heads
    }
  }

  // Pass 1: scores, one row per thread.
  for (int j = threadIdx.x; j < rows; j += kThreads) {
    const int r = row_of(j);
    if (r < 0) {
      *reinterpret_cast<float4*>(&sc[size_t(j) * kHC]) = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
      continue;
    }
    float s[kHC] = {0, 0, 0, 0};
    if (part == 1) {
      const size_t kb = size_t(r) * L.k.nk + k0;
      for (int c = 0; c < nkg; ++c) {
        const float x = load_val(L.k.kept, kb + c, L.f16);
        FKV_UNROLL
        for (int h = 0; h < kHC; ++h) s[h] = fmaf(qs[h * D + c], x, s[h]);
      }
      if (!a.fitted && ncg > 0) {
        const float* pr = L.k.pending + size_t(r) * L.k.nc + c0;
        for (int c = 0; c < ncg; ++c) {
          const float x = pr[c];
          FKV_UNROLL
          for (int h = 0; h < kHC; ++h) s[h] = fmaf(qs[h * D + nkg + c], x, s[h]);
        }
      }
      if (chirp) {
        FKV_UNROLL
        for (int h = 0; h < kHC; ++h) s[h] += h < nh ? sc[size_t(j) * kHC + h] + csts[h] : 0.0f;
      } else if (col_fft) {
        FKV_UNROLL
        for (int h = 0; h < kHC; ++h)
          s[h] += h < nh ? fbuf[size_t(h * VB + j % VB) * N + j / VB].x + csts[h] : 0.0f;
      } else if (spectral) {
        const float2 step = L.table[r];  // r = the middle position m < T
        float t[kHC] = {0, 0, 0, 0};
        for (int n0 = 0; n0 < N; n0 += kSplitSeed) {
          float2 w = split_basis(L.table, n0, r, L.T);
          const int n1 = min(N, n0 + kSplitSeed);
          for (int nn = n0; nn < n1; ++nn) {
            const float4 z01 = *reinterpret_cast<const float4*>(&zs[nn * kHC]);
            const float4 z23 = *reinterpret_cast<const float4*>(&zs[nn * kHC + 2]);
            t[0] = fmaf(z01.x, w.x, fmaf(z01.y, w.y, t[0]));
            t[1] = fmaf(z01.z, w.x, fmaf(z01.w, w.y, t[1]));
            t[2] = fmaf(z23.x, w.x, fmaf(z23.y, w.y, t[2]));
            t[3] = fmaf(z23.z, w.x, fmaf(z23.w, w.y, t[3]));
            w = split_rotate(w, step);
          }
        }
        FKV_UNROLL
        for (int h = 0; h < kHC; ++h) s[h] += t[h] + csts[h];
      }
    } else {
      for (int j = 0; j < D; ++j) {
        const float x = exact_k(r, j);
        FKV_UNROLL
        for (int h = 0; h < kHC; ++h) s[h] = fmaf(qs[h * D + j], x, s[h]);
      }
    }
    *reinterpret_cast<float4*>(&sc[size_t(j) * kHC]) = make_float4(s[0], s[1], s[2], s[3]);
  }
  __syncthreads();

  // Softmax statistics of the span: warp h for head h.
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (warp < nh) {
    const float2 ms = warp_softmax_column(sc, rows, kHC, warp, lane);
    const float mx = ms.x, l = ms.y;
    if (lane == 0) {
      part_out(warp)[0] = mx;
      part_out(warp)[1] = l;
    }
  }
  __syncthreads();

  // Pass 2: Σ_r p_r·v_r over `cols` columns of the rows, column c landing in output dim dim_of(c).
  auto v_pass = [&](int cols, auto val, auto dim_of) {
    if (cols <= 0) return;
    const int groups = max(1, kThreads / cols);
    if (int(threadIdx.x) >= groups * cols) return;
    const int c = threadIdx.x % cols, g = threadIdx.x / cols;
    float acc[kHC] = {0, 0, 0, 0};
    for (int j = g; j < rows; j += groups) {
      const int r = row_of(j);
      if (r < 0) continue;
      const float4 p = *reinterpret_cast<const float4*>(&sc[size_t(j) * kHC]);
      const float x = val(r, c);
      acc[0] = fmaf(p.x, x, acc[0]);
      acc[1] = fmaf(p.y, x, acc[1]);
      acc[2] = fmaf(p.z, x, acc[2]);
      acc[3] = fmaf(p.w, x, acc[3]);
    }
    const int d = dim_of(c);
    for (int h = 0; h < nh; ++h) atomicAdd(&accs[h * D + d], acc[h]);
  };
  if (part != 1) {
    v_pass(D, exact_v, [](int c) { return c; });
  } else {
    const int kv0 = dv.keep_offset(kvh), nkv = dv.keep_offset(kvh + 1) - kv0;
    const int cv0 = dv.comp_offset(kvh), ncv = dv.comp_offset(kvh + 1) - cv0;
    v_pass(
        nkv, [&](int r, int c) { return load_val(L.v.kept, size_t(r) * L.v.nk + kv0 + c, L.f16); },
        [&](int c) { return dv.keep(kv0 + c); });
    if (!a.fitted) {
      v_pass(
          ncv, [&](int r, int c) { return L.v.pending[size_t(r) * L.v.nc + cv0 + c]; },
          [&](int c) { return dv.comp(cv0 + c); });
    } else if (ncv > 0 && colblk) {
      // H_n of the column block: per head and column the FFT of its rows' P over u, then
      // H_n = Σ_v e^{2πi nv/T} X_v[n] (docs/CUDA.md).
      for (int e = threadIdx.x; e < kHC * VB * N; e += kThreads) {
        const int u = e & (N - 1), f = e >> pl.col_logn, h = f / VB;
        fbuf[e] = make_float2(h < nh ? sc[size_t(u * VB + f % VB) * kHC + h] : 0.0f, 0.0f);
      }
      block_dft_pow2(fbuf, kHC * VB, pl.col_logn, L.table, R);
      for (int e = threadIdx.x; e < nh * N; e += kThreads) {
        const int h = e / N, nn = e % N;
        float2 hv = make_float2(0.0f, 0.0f);
        for (int vl = 0; vl < VB && v0 + vl < R; ++vl) {
          const float2 t = chirp_cmul(L.table[size_t(nn) * (v0 + vl)], fbuf[size_t(h * VB + vl) * N + nn]);
          hv.x += t.x;
          hv.y += t.y;
        }
        float* hb = a.hpart + ((size_t(i) * H + h0 + h) * pl.n_mid + ls) * (size_t(2) * N);
        hb[nn] = hv.x;
        hb[N + nn] = hv.y;
      }
    } else if (ncv > 0 && L.chirp) {
      // H_n of this span by chirp-z (split_chirp.h), head by head.
      const float2* seg = L.chirp_seg + size_t(ls) * kChirpF;
      for (int h = 0; h < nh; h += kChirpPair) {
        const int cnt = min(kChirpPair, nh - h);
        for (int e = threadIdx.x; e < cnt * kChirpF; e += kThreads) {
          const int q = e / kChirpF, j = e & (kChirpF - 1);
          float2 x = make_float2(0.0f, 0.0f);
          if (j < rows) {
            const float p = sc[size_t(j) * kHC + h + q];
            const float2 c = L.chirp_m[r0 + j];
            x = make_float2(p * c.x, p * c.y);
          }
          fbuf[e] = x;
        }
        block_fft(fbuf, cnt, tw, true);
        for (int e = threadIdx.x; e < cnt * kChirpF; e += kThreads)
          fbuf[e] = chirp_cmul(fbuf[e], seg[e & (kChirpF - 1)]);
        block_fft(fbuf, cnt, tw, true);
        for (int e = threadIdx.x; e < cnt * N; e += kThreads) {
          const int q = e / N, nn = e % N;
          float* hb = a.hpart + ((size_t(i) * H + h0 + h + q) * pl.n_mid + ls) * (size_t(2) * N);
          const float2 hv = chirp_cmul(L.chirp_n[nn], fbuf[size_t(q) * kChirpF + N - 1 - nn]);
          hb[nn] = hv.x * inv_f;
          hb[N + nn] = hv.y * inv_f;
        }
        __syncthreads();  // fbuf is refilled for the next heads
      }
    } else if (ncv > 0) {
      // H_n of this span, one frequency per thread, the basis along the rows by rotation.
      for (int nn = threadIdx.x; nn < N; nn += kThreads) {
        const float2 step = L.table[nn % L.T];
        float hr[kHC] = {0, 0, 0, 0}, hi[kHC] = {0, 0, 0, 0};
        for (int rb = r0; rb < r1; rb += kSplitSeed) {
          float2 w = split_basis(L.table, nn, rb, L.T);
          const int re = min(r1, rb + kSplitSeed);
          for (int r = rb; r < re; ++r) {
            const float4 p = *reinterpret_cast<const float4*>(&sc[size_t(r - r0) * kHC]);
            const float pv[4] = {p.x, p.y, p.z, p.w};
            FKV_UNROLL
            for (int h = 0; h < kHC; ++h) {
              hr[h] = fmaf(pv[h], w.x, hr[h]);
              hi[h] = fmaf(pv[h], w.y, hi[h]);
            }
            w = split_rotate(w, step);
          }
        }
        for (int h = 0; h < nh; ++h) {
          float* hb = a.hpart + ((size_t(i) * H + h0 + h) * pl.n_mid + ls) * (size_t(2) * N);
          hb[nn] = hr[h];
          hb[N + nn] = hi[h];
        }
      }
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < nh * D; e += kThreads) part_out(e / D)[2 + e % D] = accs[e];
}

template <int kBlock = kThreads>
__device__ float block_reduce(float x, bool is_max, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  FKV_UNROLL
  for (int o = 16; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = is_max ? fmaxf(x, y) : x + y;
  }
  __syncthreads();  // red may still be read from a previous call
  if (lane == 0) red[warp] = x;
  __syncthreads();
  float r = is_max ? -INFINITY : 0.0f;
  for (int w = 0; w < kBlock / 32; ++w) r = is_max ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

// out[i, h, :] from the partials of every split (log-sum-exp weights), plus the fitted middle's compressed
// V dims from the merged H. Shared memory: split weights [n_total], output [D], H [2N], reduction [32].
template <int kBlock>
__global__ void __launch_bounds__(kBlock) split_combine_kernel(DirectArgs a) {
  FKV_DYN_SMEM(smem);
  const SplitLayerDev& L = a.L;
  const Plan& pl = a.plan;
  const int h = blockIdx.x, i = blockIdx.y, D = L.d, N = L.N, kvh = h / (a.H / L.kvh);
  float* wsm = smem;
  float* outs = wsm + pl.n_total;
  float* hsm = outs + D;
  float* red = hsm + (L.T > 0 ? 2 * N : 0);
  const float* pb = a.part + (size_t(i) * a.H + h) * pl.n_total * size_t(D + 2);
  auto pm = [&](int s) { return pb[size_t(s) * (D + 2)]; };

  float mx = -INFINITY;
  for (int s = threadIdx.x; s < pl.n_total; s += kBlock) mx = fmaxf(mx, pm(s));
  const float M = block_reduce<kBlock>(mx, true, red);
  float lsum = 0.0f, psum = 0.0f;
  for (int s = threadIdx.x; s < pl.n_total; s += kBlock) {
    const float m = pm(s);
    const float w = m == -INFINITY ? 0.0f : expf(m - M);
    wsm[s] = w;
    if (w != 0.0f) {
      const float l = pb[size_t(s) * (D + 2) + 1];
      lsum += w * l;
      if (s >= pl.n_sink && s < pl.n_sink + pl.n_mid) psum += w * l;
    }
  }
  const float Lsum = block_reduce<kBlock>(lsum, false, red);
  // Σ_m P_m over the middle, on the merged scale
  const float Psum = block_reduce<kBlock>(psum, false, red);
  __syncthreads();  // wsm complete
  // The sums over splits below are latency-bound walks (one thread per output, a load per split): their
  // loads go out kCombineAhead at a time, and the sums keep the split order (same bits as one by one). On an
  // H100 (8B shape, 32K, N 512) this kernel took 128 us a layer with one load in flight, 73 with 8.
  for (int d = threadIdx.x; d < D; d += kBlock) {
    float o = 0.0f;
    for (int s0 = 0; s0 < pl.n_total; s0 += kCombineAhead) {
      float v[kCombineAhead];
      FKV_UNROLL
      for (int k = 0; k < kCombineAhead; ++k)
        v[k] = s0 + k < pl.n_total ? pb[size_t(s0 + k) * (D + 2) + 2 + d] : 0.0f;
      FKV_UNROLL
      for (int k = 0; k < kCombineAhead; ++k)
        if (s0 + k < pl.n_total && wsm[s0 + k] != 0.0f) o = fmaf(wsm[s0 + k], v[k], o);
    }
    outs[d] = o;
  }
  const Dims dv{L.v.dims, L.kvh, L.v.nk};
  const int cv0 = L.T > 0 ? dv.comp_offset(kvh) : 0, ncv = L.T > 0 ? dv.comp_offset(kvh + 1) - cv0 : 0;
  if (a.fitted && ncv > 0) {
    const float* hb = a.hpart + (size_t(i) * a.H + h) * pl.n_mid * (size_t(2) * N);
    for (int e = threadIdx.x; e < 2 * N; e += kBlock) {
      float x = 0.0f;
      for (int m0 = 0; m0 < pl.n_mid; m0 += kCombineAhead) {
        float v[kCombineAhead];
        FKV_UNROLL
        for (int k = 0; k < kCombineAhead; ++k) v[k] = m0 + k < pl.n_mid ? hb[size_t(m0 + k) * 2 * N + e] : 0.0f;
        FKV_UNROLL
        for (int k = 0; k < kCombineAhead; ++k) {
          const float w = m0 + k < pl.n_mid ? wsm[pl.n_sink + m0 + k] : 0.0f;
          if (w != 0.0f) x = fmaf(w, v[k], x);
        }
      }
      hsm[e] = x;
    }
    __syncthreads();  // hsm and outs complete
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float inv_n = 1.0f / float(N);
    for (int j = warp; j < ncv; j += kBlock / 32) {
      const float* cr = L.v.coef + size_t(cv0 + j) * 2 * N;
      float dot = 0.0f;
      for (int nn = lane; nn < N; nn += 32) {
        const float wn = nn == 0 ? 0.5f : 1.0f;
        dot = fmaf(wn, fmaf(cr[nn], hsm[nn], cr[N + nn] * hsm[N + nn]), dot);
      }
      FKV_UNROLL
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (lane == 0) {
        const float2 ab = norm_ab(L.v.norm, cv0 + j);
        outs[dv.comp(cv0 + j)] += ab.x * inv_n * dot + ab.y * Psum;
      }
    }
  }
  __syncthreads();
  const float inv = 1.0f / Lsum;
  for (int d = threadIdx.x; d < D; d += kBlock) a.out[(size_t(i) * a.H + h) * D + d] = outs[d] * inv;
}

}  // namespace
}  // namespace splitattn
}  // namespace fkv::cuda
