// The Fourier side of the split KV cache on the GPU: projection/accumulation of compressed dims into
// coefficients, reconstruction (for the fit's statistics and for materialising the middle), the fit and
// refits, and split_kv_append's movement of rows between sink, window ring and middle. Follows
// backend/cpu/split_kv_kernels.cpp step for step (same order of the running sums); all arithmetic fp32 except
// the sums over the middle that the CPU also keeps in double.
//
// Basis values come from FourierBasis's table of (cos, sin)(2π k / T) indexed by the exact (n·p) mod T, so
// that the GPU and the CPU use the same basis floats whatever T.
#include <algorithm>
#include <cmath>

#include "cuda_check.h"
#include "split_kv.h"
#include "split_kv_device.cuh"

namespace fkv::cuda {

using namespace splitkv;

void pack_layer(const SplitLayerDev& L, Op& op) {
  const SplitPartDev* parts[2] = {&L.k, &L.v};
  for (int q = 0; q < 2; ++q) {
    const SplitPartDev& P = *parts[q];
    const void* ptrs[7] = {P.sink, P.window, P.kept, P.pending, P.coef, P.norm, P.dims};
    for (int j = 0; j < 7; ++j) op.p[7 * q + j] = ptrs[j];
  }
  op.p[14] = L.table;
  op.p[15] = L.chirp_n;
  op.p[16] = L.chirp_m;
  op.p[17] = L.chirp_seg;
  op.p[18] = L.chirp_twiddle;
  const int64_t ints[15] = {L.f16, L.kvh, L.d,    L.S,    L.W,    L.T,     L.N,  L.fit,
                            L.lsq, L.k.nk, L.k.nc, L.v.nk, L.v.nc, L.chirp, L.fft};
  for (int j = 0; j < 15; ++j) op.i[j] = ints[j];
}

SplitLayerDev unpack_layer(const Op& op) {
  SplitLayerDev L;
  SplitPartDev* parts[2] = {&L.k, &L.v};
  for (int q = 0; q < 2; ++q) {
    SplitPartDev& P = *parts[q];
    auto mp = [&](int j) { return const_cast<void*>(op.p[7 * q + j]); };
    P.sink = mp(0);
    P.window = mp(1);
    P.kept = mp(2);
    P.pending = static_cast<float*>(mp(3));
    P.coef = static_cast<float*>(mp(4));
    P.norm = static_cast<float*>(mp(5));
    P.dims = static_cast<const int*>(op.p[7 * q + 6]);
  }
  L.table = static_cast<const float2*>(op.p[14]);
  L.chirp_n = static_cast<const float2*>(op.p[15]);
  L.chirp_m = static_cast<const float2*>(op.p[16]);
  L.chirp_seg = static_cast<const float2*>(op.p[17]);
  L.chirp_twiddle = static_cast<const float2*>(op.p[18]);
  L.chirp = op.i[13] != 0;
  L.fft = op.i[14] != 0;
  L.f16 = op.i[0] != 0;
  L.kvh = int(op.i[1]);
  L.d = int(op.i[2]);
  L.S = int(op.i[3]);
  L.W = int(op.i[4]);
  L.T = int(op.i[5]);
  L.N = int(op.i[6]);
  L.fit = int(op.i[7]);
  L.lsq = op.i[8] != 0;
  L.k.nk = int(op.i[9]);
  L.k.nc = int(op.i[10]);
  L.v.nk = int(op.i[11]);
  L.v.nc = int(op.i[12]);
  return L;
}

namespace {

constexpr int kThreads = 256;
// Projection tile: 64 compressed dims x 32 frequencies (cos and sin), rows staged 16 at a time.
constexpr int kPC = 64, kPF = 32, kPR = 16;
// Reconstruction tile: 64 middle rows x 64 compressed dims, frequencies staged 16 at a time.
constexpr int kRM = 64, kRC = 64, kRN = 16;
constexpr int kRefitBlocks = 128;  // row-block partials of a refit's statistics

unsigned blocks(int64_t items, int per = kThreads) {
  return unsigned((items + per - 1) / per);
}

// The middle position of a decode step's leaving row, from the device position: the graph replays the
// same launch for every step (host m0 is then an offset into the rows).
__device__ __forceinline__ int start_position(int m0, const int* p0_dev, int S, int W) {
  return p0_dev ? max(S, *p0_dev - W) - S + m0 : m0;
}

// coef[c, f] (+)= Σ_r values[r, c]·cos(2π f (m + r)/T), coef[c, N + f] the same with sin: rows added in
// order, one at a time, like fourier_accumulate on the host. Thread: 4 dims x 2 frequencies x (cos, sin).
__global__ void __launch_bounds__(kThreads)
    accumulate_kernel(const float* __restrict__ values, int rows, int stride, int nc, int m0,
                      const int* __restrict__ p0_dev, int pS, int pW, int T, int N,
                      const float2* __restrict__ table, bool overwrite, float* __restrict__ coef) {
  __shared__ __align__(16) float xs[kPR][kPC];
  __shared__ __align__(16) float bc[kPR][kPF];
  __shared__ __align__(16) float bs[kPR][kPF];
  const int f0 = blockIdx.x * kPF, c0 = blockIdx.y * kPC;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m_start = start_position(m0, p0_dev, pS, pW);
  const size_t two_n = size_t(2) * N;
  float acc[4][2][2];
#pragma unroll
  for (int k = 0; k < 4; ++k)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int c = c0 + ty * 4 + k, f = f0 + tx * 2 + j;
      const bool ok = !overwrite && c < nc && f < N;
      acc[k][j][0] = ok ? coef[size_t(c) * two_n + f] : 0.0f;
      acc[k][j][1] = ok ? coef[size_t(c) * two_n + N + f] : 0.0f;
    }
  for (int r0 = 0; r0 < rows; r0 += kPR) {
    __syncthreads();  // the previous rows are used
    for (int e = threadIdx.x; e < kPR * kPC; e += kThreads) {
      const int r = e / kPC, c = e % kPC;
      xs[r][c] = (r0 + r < rows && c0 + c < nc) ? values[size_t(r0 + r) * stride + c0 + c] : 0.0f;
    }
    for (int e = threadIdx.x; e < kPR * kPF; e += kThreads) {
      const int r = e / kPF, f = e % kPF;
      const float2 b = (r0 + r < rows && f0 + f < N) ? split_basis(table, f0 + f, m_start + r0 + r, T)
                                                     : make_float2(0.0f, 0.0f);
      bc[r][f] = b.x;
      bs[r][f] = b.y;
    }
    __syncthreads();
    const int rn = min(kPR, rows - r0);
    for (int r = 0; r < rn; ++r) {
      const float4 x = *reinterpret_cast<const float4*>(&xs[r][ty * 4]);
      const float2 cv = *reinterpret_cast<const float2*>(&bc[r][tx * 2]);
      const float2 sv = *reinterpret_cast<const float2*>(&bs[r][tx * 2]);
      const float xv[4] = {x.x, x.y, x.z, x.w}, cw[2] = {cv.x, cv.y}, sw[2] = {sv.x, sv.y};
#pragma unroll
      for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          acc[k][j][0] = fmaf(xv[k], cw[j], acc[k][j][0]);
          acc[k][j][1] = fmaf(xv[k], sw[j], acc[k][j][1]);
        }
    }
  }
#pragma unroll
  for (int k = 0; k < 4; ++k)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int c = c0 + ty * 4 + k, f = f0 + tx * 2 + j;
      if (c < nc && f < N) {
        coef[size_t(c) * two_n + f] = acc[k][j][0];
        coef[size_t(c) * two_n + N + f] = acc[k][j][1];
      }
    }
}

// Running sum, min and max of the true values (norm[4..6]) over more rows, in row order. init: the fit's
// start (sum 0, min = max = row 0).
__global__ void stats_kernel(const float* __restrict__ values, int rows, int stride, int nc, bool init,
                             float* __restrict__ norm) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= nc) return;
  float* st = norm + size_t(c) * kSplitNormStride;
  float sum, mn, mx;
  if (init) {
    sum = 0.0f;
    mn = mx = values[c];
    st[7] = 0.0f;
  } else {
    sum = st[4];
    mn = st[5];
    mx = st[6];
  }
  for (int r = 0; r < rows; ++r) {
    const float x = values[size_t(r) * stride + c];
    sum += x;
    mn = x < mn ? x : mn;
    mx = x > mx ? x : mx;
  }
  st[4] = sum;
  st[5] = mn;
  st[6] = mx;
}

// x̃(m) of every compressed dim over middle rows 0..M-1 (fourier_reconstruct: DC at half weight).
// kRows: writes x̂ = a·x̃ + b into full rows (dim comp[c] of c's head); else per-block statistics over the
// rows (sum and sum of squares in double, min, max) for the refit. Thread: 4 rows x 4 dims.
template <bool kRows>
__global__ void __launch_bounds__(kThreads)
    reconstruct_kernel(const float* __restrict__ coef, const float* __restrict__ norm, int nc, int M, int T,
                       int N, const float2* __restrict__ table, double* __restrict__ part_sum,
                       double* __restrict__ part_sq, float* __restrict__ part_min,
                       float* __restrict__ part_max, const int* __restrict__ dims, int kvh, int nk, int d,
                       float* __restrict__ out_rows) {
  __shared__ __align__(16) float cc[kRN][kRC];
  __shared__ __align__(16) float cs[kRN][kRC];
  __shared__ __align__(16) float bc[kRN][kRM];
  __shared__ __align__(16) float bs[kRN][kRM];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int c0 = blockIdx.x * kRC;
  const size_t two_n = size_t(2) * N;
  const float inv_n = 1.0f / float(N);
  double s_sum[4] = {0, 0, 0, 0}, s_sq[4] = {0, 0, 0, 0};
  float s_min[4], s_max[4], dc[4];
  int col[4] = {0, 0, 0, 0};
  float2 ab[4];
  const Dims dm{dims, kvh, nk};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int c = c0 + tx * 4 + k;
    s_min[k] = INFINITY;
    s_max[k] = -INFINITY;
    dc[k] = c < nc ? coef[size_t(c) * two_n] : 0.0f;
    ab[k] = make_float2(0.0f, 0.0f);
    if (kRows && c < nc) {
      const int g = head_of(dims + kvh + 1, kvh, c);
      col[k] = g * d + dm.comp(c);
      ab[k] = norm_ab(norm, c);
    }
  }
  const int tiles = (M + kRM - 1) / kRM;
  for (int tile = blockIdx.y; tile < tiles; tile += gridDim.y) {
    const int mt = tile * kRM;
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[r][k] = 0.0f;
    for (int n0 = 0; n0 < N; n0 += kRN) {
      __syncthreads();  // the previous chunk is used
      for (int e = threadIdx.x; e < kRN * kRC; e += kThreads) {
        const int n = e % kRN, c = e / kRN;
        const bool ok = c0 + c < nc && n0 + n < N;
        cc[n][c] = ok ? coef[size_t(c0 + c) * two_n + n0 + n] : 0.0f;
        cs[n][c] = ok ? coef[size_t(c0 + c) * two_n + N + n0 + n] : 0.0f;
      }
      for (int e = threadIdx.x; e < kRN * kRM; e += kThreads) {
        const int n = e / kRM, r = e % kRM;
        const float2 b =
            (mt + r < M && n0 + n < N) ? split_basis(table, n0 + n, mt + r, T) : make_float2(0.0f, 0.0f);
        bc[n][r] = b.x;
        bs[n][r] = b.y;
      }
      __syncthreads();
      const int nn = min(kRN, N - n0);
      for (int n = 0; n < nn; ++n) {
        const float4 c4 = *reinterpret_cast<const float4*>(&cc[n][tx * 4]);
        const float4 s4 = *reinterpret_cast<const float4*>(&cs[n][tx * 4]);
        const float4 b4 = *reinterpret_cast<const float4*>(&bc[n][ty * 4]);
        const float4 t4 = *reinterpret_cast<const float4*>(&bs[n][ty * 4]);
        const float cv[4] = {c4.x, c4.y, c4.z, c4.w}, sv[4] = {s4.x, s4.y, s4.z, s4.w};
        const float bv[4] = {b4.x, b4.y, b4.z, b4.w}, tv[4] = {t4.x, t4.y, t4.z, t4.w};
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int k = 0; k < 4; ++k) acc[r][k] = fmaf(bv[r], cv[k], fmaf(tv[r], sv[k], acc[r][k]));
      }
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int m = mt + ty * 4 + r, c = c0 + tx * 4 + k;
        if (m >= M || c >= nc) continue;
        const float x = (acc[r][k] - 0.5f * dc[k]) * inv_n;
        if constexpr (kRows) {
          out_rows[size_t(m) * kvh * d + col[k]] = ab[k].x * x + ab[k].y;
        } else {
          s_sum[k] += double(x);
          s_sq[k] += double(x) * double(x);
          s_min[k] = fminf(s_min[k], x);
          s_max[k] = fmaxf(s_max[k], x);
        }
      }
  }
  if constexpr (!kRows) {
    // Reduce the 16 row groups (ty) of each dim, then one partial per block and dim.
    __shared__ double rsum[16][kRC], rsq[16][kRC];
    __shared__ float rmin[16][kRC], rmax[16][kRC];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      rsum[ty][tx * 4 + k] = s_sum[k];
      rsq[ty][tx * 4 + k] = s_sq[k];
      rmin[ty][tx * 4 + k] = s_min[k];
      rmax[ty][tx * 4 + k] = s_max[k];
    }
    __syncthreads();
    if (threadIdx.x < kRC && c0 + int(threadIdx.x) < nc) {
      const int c = c0 + threadIdx.x;
      double a = 0, b = 0;
      float mn = INFINITY, mx = -INFINITY;
      for (int y = 0; y < 16; ++y) {
        a += rsum[y][threadIdx.x];
        b += rsq[y][threadIdx.x];
        mn = fminf(mn, rmin[y][threadIdx.x]);
        mx = fmaxf(mx, rmax[y][threadIdx.x]);
      }
      const size_t o = size_t(blockIdx.y) * nc + c;
      part_sum[o] = a;
      part_sq[o] = b;
      part_min[o] = mn;
      part_max[o] = mx;
    }
  }
}

// The refit's numbers from the partials (split_kv_kernels.cpp refit()): μ, ρ from the running statistics,
// μ̃, ρ̃ from the reconstruction; least squares: ρ := a·ρ̃ with Σ x·x̃ by Parseval.
__global__ void refit_finish_kernel(const double* __restrict__ part_sum, const double* __restrict__ part_sq,
                                    const float* __restrict__ part_min, const float* __restrict__ part_max,
                                    int parts, int nc, int M, int N, const float* __restrict__ coef, bool lsq,
                                    float* __restrict__ norm) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= nc) return;
  double sr = 0, srr = 0;
  float mn = INFINITY, mx = -INFINITY;
  for (int y = 0; y < parts; ++y) {
    const size_t o = size_t(y) * nc + c;
    sr += part_sum[o];
    srr += part_sq[o];
    mn = fminf(mn, part_min[o]);
    mx = fmaxf(mx, part_max[o]);
  }
  const float mu_rec = float(sr / M);
  // max |x̃ − μ̃| is reached at the smallest or the largest x̃ (the float subtraction is monotonic).
  const float rho_rec = fmaxf(0.0f, fmaxf(mx - mu_rec, mu_rec - mn));
  float* st = norm + size_t(c) * kSplitNormStride;
  const float mu = st[4] / float(M);
  st[0] = mu;
  st[1] = fmaxf(st[6] - mu, mu - st[5]);
  st[2] = mu_rec;
  st[3] = rho_rec;
  if (lsq && rho_rec > 0) {
    const float* cc = coef + size_t(c) * 2 * N;
    double sxr = 0;
    for (int n = 0; n < N; ++n)
      sxr += (n == 0 ? 0.5 : 1.0) * (double(cc[n]) * cc[n] + double(cc[N + n]) * cc[N + n]);
    sxr /= N;
    const double cov = sxr / M - double(mu) * mu_rec, var = srr / M - double(mu_rec) * mu_rec;
    st[1] = var > 0 ? float(cov / var) * rho_rec : 0.0f;
  }
}

// Positions leaving the window (window_begin(p0) .. window_begin(p0 + n) - 1, oldest first) enter the middle
// of one part: kept dims to `kept`, compressed dims to `pending` (before the fit) and to comp_stage [cnt, nc]
// (for the accumulation after it). A row comes from the ring, or from the chunk when the chunk is longer
// than the window, rounded to the cache type either way. Block r: leaving row r.
__global__ void __launch_bounds__(kThreads)
    scatter_kernel(SplitLayerDev L, int part, const float* __restrict__ chunk, int n, int pos0,
                   const int* __restrict__ p0_dev, float* __restrict__ comp_stage) {
  const int p0 = p0_dev ? *p0_dev : pos0;
  const int e0 = L.window_begin(p0), e1 = L.window_begin(p0 + n);
  const int r = blockIdx.x;
  if (r >= e1 - e0) return;
  const SplitPartDev& P = part == 0 ? L.k : L.v;
  const int p = e0 + r, m = p - L.S, row_len = L.row_len();
  const bool ring = p < p0;
  const size_t ring_base = ring ? size_t((p - L.S) % L.W) * row_len : 0;
  const size_t chunk_base = ring ? 0 : size_t(p - p0) * row_len;
  auto src = [&](int col) {
    return ring ? load_val(P.window, ring_base + col, L.f16) : round_to(L.f16, chunk[chunk_base + col]);
  };
  const Dims dm{P.dims, L.kvh, P.nk};
  for (int i = threadIdx.x; i < P.nk; i += kThreads) {
    const int g = head_of(P.dims, L.kvh, i);
    store_val(P.kept, size_t(m) * P.nk + i, L.f16, src(g * L.d + dm.keep(i)));
  }
  for (int i = threadIdx.x; i < P.nc; i += kThreads) {
    const int g = head_of(P.dims + L.kvh + 1, L.kvh, i);
    const float x = src(g * L.d + dm.comp(i));
    if (m < L.fit) P.pending[size_t(m) * P.nc + i] = x;
    comp_stage[size_t(r) * P.nc + i] = x;
  }
}

// Chunk rows that stay exact: positions < S to the sink, positions >= window_begin(p0 + n) to the ring.
// Runs after scatter_kernel has read the ring rows these may overwrite. Block r: chunk row r.
__global__ void __launch_bounds__(kThreads)
    store_kernel(SplitLayerDev L, const float* __restrict__ k, const float* __restrict__ v, int n, int pos0,
                 const int* __restrict__ p0_dev) {
  const int p0 = p0_dev ? *p0_dev : pos0;
  const int r = blockIdx.x, p = p0 + r, row_len = L.row_len();
  void *dk, *dv;
  size_t row;
  if (p < L.S) {
    dk = L.k.sink;
    dv = L.v.sink;
    row = size_t(p);
  } else if (L.W > 0 && p >= L.window_begin(p0 + n)) {
    dk = L.k.window;
    dv = L.v.window;
    row = size_t((p - L.S) % L.W);
  } else {
    return;
  }
  for (int col = threadIdx.x; col < row_len; col += kThreads) {
    store_val(dk, row * row_len + col, L.f16, k[size_t(r) * row_len + col]);
    store_val(dv, row * row_len + col, L.f16, v[size_t(r) * row_len + col]);
  }
}

void accumulate_launch(const float* values, int rows, int stride, int nc, int m0, const int* p0_dev, int pS,
                       int pW, int T, int N, const float2* table, bool overwrite, float* coef,
                       cudaStream_t st) {
  if (nc <= 0 || N <= 0 || (rows <= 0 && !overwrite)) return;
  const dim3 grid(blocks(N, kPF), blocks(nc, kPC));
  accumulate_kernel<<<grid, kThreads, 0, st>>>(values, rows, stride, nc, m0, p0_dev, pS, pW, T, N, table,
                                               overwrite, coef);
  check_launch("fourier_accumulate");
}

void stats_launch(const float* values, int rows, int stride, int nc, bool init, float* norm,
                  cudaStream_t st) {
  if (nc <= 0) return;
  stats_kernel<<<blocks(nc), kThreads, 0, st>>>(values, rows, stride, nc, init, norm);
  check_launch("split_kv_stats");
}

// Refit over middle rows 0..M-1 (partials: kRefitBlocks x nc of sum, sum of squares, min, max).
void refit_launch(const SplitLayerDev& L, const SplitPartDev& P, int M, void* partials, cudaStream_t st) {
  const int nc = P.nc;
  const int parts = std::max(1, std::min(kRefitBlocks, (M + kRM - 1) / kRM));
  double* ps = static_cast<double*>(partials);
  double* pq = ps + size_t(kRefitBlocks) * nc;
  float* pmin = reinterpret_cast<float*>(pq + size_t(kRefitBlocks) * nc);
  float* pmax = pmin + size_t(kRefitBlocks) * nc;
  reconstruct_kernel<false><<<dim3(blocks(nc, kRC), unsigned(parts)), kThreads, 0, st>>>(
      P.coef, P.norm, nc, M, L.T, L.N, L.table, ps, pq, pmin, pmax, P.dims, L.kvh, P.nk, L.d, nullptr);
  check_launch("split_kv_refit");
  refit_finish_kernel<<<blocks(nc), kThreads, 0, st>>>(ps, pq, pmin, pmax, parts, nc, M, L.N, P.coef, L.lsq,
                                                       P.norm);
  check_launch("split_kv_refit_finish");
}

// The compressed dims of leaving rows m0 .. m0+cnt-1 of one part (comp: their values [cnt, nc]; rows before
// the fit are already in `pending`): the fit when the middle reaches fit_tokens, then accumulation in
// segments that end where the middle reaches a refit length (split_kv_kernels.cpp append_middle()).
void middle_part(const SplitLayerDev& L, const SplitPartDev& P, const float* comp, int cnt, int m0,
                 const int* p0_dev, void* partials, cudaStream_t st) {
  const int nc = P.nc;
  int r = 0;
  if (m0 < L.fit) {
    r = std::min(cnt, L.fit - m0);
    if (m0 + r == L.fit) {
      accumulate_launch(P.pending, L.fit, nc, nc, 0, nullptr, 0, 0, L.T, L.N, L.table, true, P.coef, st);
      stats_launch(P.pending, L.fit, nc, nc, true, P.norm, st);
      refit_launch(L, P, L.fit, partials, st);
    }
  }
  while (r < cnt) {
    const int m = m0 + r, next = L.next_refit(m);
    const int seg = next > 0 ? std::min(cnt - r, next - m) : cnt - r;
    const float* rows = comp + size_t(r) * nc;
    // Replayed (p0_dev): the kernel finds the leaving row's position on the device; r is then an offset.
    accumulate_launch(rows, seg, nc, nc, p0_dev ? r : m, p0_dev, L.S, L.W, L.T, L.N, L.table, false, P.coef,
                      st);
    stats_launch(rows, seg, nc, nc, false, P.norm, st);
    r += seg;
    if (m + seg == next) refit_launch(L, P, next, partials, st);
  }
}

size_t align8(size_t b) {
  return (b + 7) & ~size_t(7);
}

}  // namespace

AppendEvent append_event(const SplitLayerDev& L, int n, int pos0) {
  if (n != 1) return AppendEvent::kMany;
  if (L.T <= 0) return AppendEvent::kNone;
  const int e0 = L.window_begin(pos0), e1 = L.window_begin(pos0 + 1);
  if (e1 == e0) return AppendEvent::kNone;
  const int m = e0 - L.S;
  if (m < L.fit - 1) return AppendEvent::kPending;
  if (m == L.fit - 1) return AppendEvent::kFit;
  const int next = L.next_refit(m);
  return next > 0 && m + 1 == next ? AppendEvent::kRefit : AppendEvent::kAccumulate;
}

size_t append_scratch_bytes(const SplitLayerDev& L, int n) {
  const size_t stage = align8(size_t(std::max(n, 1)) * (L.k.nc + L.v.nc) * sizeof(float));
  const size_t partials =
      size_t(kRefitBlocks) * std::max(L.k.nc, L.v.nc) * (2 * sizeof(double) + 2 * sizeof(float));
  return stage + partials;
}

void split_append(const SplitLayerDev& L, const float* k, const float* v, int n, int pos0, const int* p0_dev,
                  void* scratch, cudaStream_t st) {
  if (n <= 0) return;
  const int e0 = L.window_begin(pos0), e1 = L.window_begin(pos0 + n);
  const int cnt = L.T > 0 ? e1 - e0 : 0, m0 = e0 - L.S;
  float* comp_k = static_cast<float*>(scratch);
  float* comp_v = comp_k + size_t(std::max(n, 1)) * L.k.nc;
  void* partials =
      static_cast<char*>(scratch) + align8(size_t(std::max(n, 1)) * (L.k.nc + L.v.nc) * sizeof(float));
  if (cnt > 0) {
    // Block r < cnt works; the grid is n so that a replayed step launches what the captured one did.
    scatter_kernel<<<unsigned(n), kThreads, 0, st>>>(L, 0, k, n, pos0, p0_dev, comp_k);
    check_launch("split_kv_scatter");
    scatter_kernel<<<unsigned(n), kThreads, 0, st>>>(L, 1, v, n, pos0, p0_dev, comp_v);
    check_launch("split_kv_scatter");
  }
  store_kernel<<<unsigned(n), kThreads, 0, st>>>(L, k, v, n, pos0, p0_dev);
  check_launch("split_kv_store");
  if (cnt <= 0) return;
  if (L.k.nc > 0) middle_part(L, L.k, comp_k, cnt, m0, p0_dev, partials, st);
  if (L.v.nc > 0) middle_part(L, L.v, comp_v, cnt, m0, p0_dev, partials, st);
}

void fourier_accumulate(const float* values, int rows, int stride, int n_comp, int m0, int period, int n_freq,
                        const float2* table, bool overwrite, float* coef, cudaStream_t st) {
  accumulate_launch(values, rows, stride, n_comp, m0, nullptr, 0, 0, period, n_freq, table, overwrite, coef,
                    st);
}

void reconstruct_into_rows(const SplitLayerDev& L, const SplitPartDev& P, int M, float* out_rows,
                           cudaStream_t st) {
  if (P.nc <= 0 || M <= 0) return;
  const int parts = std::max(1, std::min(1024, (M + kRM - 1) / kRM));
  reconstruct_kernel<true><<<dim3(blocks(P.nc, kRC), unsigned(parts)), kThreads, 0, st>>>(
      P.coef, P.norm, P.nc, M, L.T, L.N, L.table, nullptr, nullptr, nullptr, nullptr, P.dims, L.kvh, P.nk,
      L.d, out_rows);
  check_launch("split_kv_reconstruct");
}

}  // namespace fkv::cuda
