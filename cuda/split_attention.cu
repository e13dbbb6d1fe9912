// Attention over a split KV cache (backend.h split_attention) on the GPU, two ways:
//  - direct (decode, n <= kSplitDirectMaxTokens): a block takes one KV head, up to kHC query heads of its
//    group, one query and one span of one part (sink, middle, window ring or the chunk's own rows); scores go
//    to shared memory, the span's softmax needs no rescale, and partials (max, sum, output) are merged by a
//    log-sum-exp combine like attention.cu's flash-decoding. A fitted middle's compressed dims are never
//    rebuilt (FOURIER.md "Spectral"): per query head z_n = w_n/N·scale·Σ_j q_j a_j (C_jn, S_jn) is formed
//    once (split_prep_kernel); the middle rows m of a span score Σ_n z_n·(cos, sin)(2π n m/T) + Σ_j q_j b_j
//    and the V side accumulates H_n = Σ_m P_m (cos, sin)(2π n m / T) per span, rescaled in the merge like the
//    output; the combine applies out_j += a_j/N Σ_n w_n (C_jn Re H_n + S_jn Im H_n) + b_j Σ_m P_m, w_0 = 1/2
//    (docs/FOURIER-IMPL.md "The DC term"). Both sums over a span come from chirp-z convolutions of kChirpF
//    points in shared memory (split_chirp.h; the spectrum of z is formed once per query head by
//    split_uspec_kernel; opt-in, FKV_CUDA_CHIRP=1); by default (and for N > kChirpMaxN) row by row, the basis
//    walked by a rotation recurrence re-seeded from the exact table every 32 steps. Every launch is sized
//    for the whole cache and every kernel reads the position from the device when asked, so a decode step
//    replays as a CUDA graph.
//  - rows (prefill chunks, kReference/kFused): every visible row written out in fp32 (the middle's compressed
//    dims reconstructed as x̂ = a·x̃ + b), then attention.cu's kernels over those rows: the CPU reference's
//    function, computed the way the full cache is.
#include <algorithm>
#include <cmath>

#include "cuda_check.h"
#include "cuda_kernels.h"
#include "split_attention_kernels.cuh"
#include "split_chirp.h"
#include "split_kv.h"
#include "split_kv_device.cuh"

namespace fkv::cuda {

using namespace splitkv;

namespace {

using namespace splitattn;

int max_dynamic_smem = 48 * 1024;

// Every row query 0 may see, in fp32 [before + n, kvh·d]: sink, middle (kept dims, pending dims before the
// fit), window in position order, the chunk rounded to the cache type. Block: one row.
__global__ void __launch_bounds__(kThreads)
    split_rows_kernel(SplitLayerDev L, const float* __restrict__ k, const float* __restrict__ v, int pos0,
                      bool fitted, float* __restrict__ kr, float* __restrict__ vr) {
  const int t = blockIdx.x, row_len = L.row_len();
  const int sl = L.sink_len(pos0), M = L.middle_len(pos0), wb = L.window_begin(pos0);
  const int before = sl + M + max(0, pos0 - wb);
  for (int q = 0; q < 2; ++q) {
    const SplitPartDev& P = q == 0 ? L.k : L.v;
    const float* chunk = q == 0 ? k : v;
    float* o = (q == 0 ? kr : vr) + size_t(t) * row_len;
    if (t < sl) {
      for (int c = threadIdx.x; c < row_len; c += kThreads)
        o[c] = load_val(P.sink, size_t(t) * row_len + c, L.f16);
    } else if (t < sl + M) {
      const int m = t - sl;
      const Dims dm{P.dims, L.kvh, P.nk};
      for (int c = threadIdx.x; c < P.nk; c += kThreads)
        o[head_of(P.dims, L.kvh, c) * L.d + dm.keep(c)] = load_val(P.kept, size_t(m) * P.nk + c, L.f16);
      if (!fitted)
        for (int c = threadIdx.x; c < P.nc; c += kThreads)
          o[head_of(P.dims + L.kvh + 1, L.kvh, c) * L.d + dm.comp(c)] = P.pending[size_t(m) * P.nc + c];
    } else if (t < before) {
      const size_t ring = size_t((wb + (t - sl - M) - L.S) % L.W) * row_len;
      for (int c = threadIdx.x; c < row_len; c += kThreads) o[c] = load_val(P.window, ring + c, L.f16);
    } else {
      const size_t r = size_t(t - before) * row_len;
      for (int c = threadIdx.x; c < row_len; c += kThreads) o[c] = round_to(L.f16, chunk[r + c]);
    }
  }
}

int before_rows(const SplitLayerDev& L, int pos0) {
  return L.sink_len(pos0) + L.middle_len(pos0) + std::max(0, pos0 - L.window_begin(pos0));
}

}  // namespace

void split_kv_init() {
  int dev = 0, optin = 48 * 1024;
  FKV_CUDA_CHECK(cudaGetDevice(&dev), "reading the current device");
  FKV_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                 "reading the shared memory limit");
  max_dynamic_smem = optin;
  FKV_CUDA_CHECK(cudaFuncSetAttribute(split_main_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin),
                 "raising the split attention kernel's shared memory limit");
  for (const void* k : {reinterpret_cast<const void*>(split_combine_kernel<kThreads>),
                        reinterpret_cast<const void*>(split_combine_kernel<kCombineThreads>)})
    FKV_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, optin),
                   "raising the split attention combine kernel's shared memory limit");
  // What the runtime will actually allow (the launch check below uses it, so that a kernel is never launched
  // with less shared memory than it indexes).
  for (const void* k : {reinterpret_cast<const void*>(split_main_kernel),
                        reinterpret_cast<const void*>(split_combine_kernel<kThreads>),
                        reinterpret_cast<const void*>(split_combine_kernel<kCombineThreads>)}) {
    cudaFuncAttributes fa{};
    FKV_CUDA_CHECK(cudaFuncGetAttributes(&fa, k), "reading the split attention kernels' attributes");
    max_dynamic_smem = std::min(max_dynamic_smem, fa.maxDynamicSharedSizeBytes);
  }
}

size_t split_direct_workspace_bytes(const SplitLayerDev& L, int n, int n_heads, int sm_count) {
  return sizeof(float) * layout(L, make_plan(L, n, n_heads, sm_count), n, n_heads).total;
}

void split_attention_direct(const SplitAttentionArgs& a, int sm_count, cudaStream_t st) {
  if (a.n <= 0) return;
  const Plan plan = make_plan(a.L, a.n, a.n_heads, sm_count);
  const size_t smem = main_smem_bytes(a.L, plan), csmem = combine_smem_bytes(a.L, plan);
  require(int(std::max(smem, csmem)) <= max_dynamic_smem, ErrorCode::kUnsupported,
          "split attention: head_dim " + std::to_string(a.L.d) + " with " + std::to_string(a.L.N) +
              " frequencies needs " + std::to_string(std::max(smem, csmem)) +
              " bytes of shared memory per block; the kernels may use " + std::to_string(max_dynamic_smem));
  const Layout w = layout(a.L, plan, a.n, a.n_heads);
  float* ws = static_cast<float*>(a.workspace);
  DirectArgs d{};
  d.L = a.L;
  d.q = a.q;
  d.k = a.k;
  d.v = a.v;
  d.out = a.out;
  d.n = a.n;
  d.pos0 = a.pos0;
  d.p0_dev = a.pos0_dev;
  d.H = a.n_heads;
  d.scale = a.scale;
  d.fitted = a.fitted;
  d.plan = plan;
  d.part = ws + w.part;
  d.hpart = ws + w.hpart;
  d.z = reinterpret_cast<float2*>(ws + w.z);
  d.u = reinterpret_cast<float2*>(ws + w.u);
  d.cst = ws + w.cst;
  const unsigned head_blocks = unsigned(a.L.kvh * plan.hchunks);
  if (a.fitted && a.L.T > 0 && a.L.k.nc > 0) {
    split_prep_kernel<<<dim3(head_blocks, unsigned(cdiv(a.L.N, kPrepFreqs)), unsigned(a.n)), kThreads, 0,
                        st>>>(d);
    check_launch("split_attention_prep");
    if (a.L.chirp) {
      split_uspec_kernel<<<dim3(unsigned(a.n_heads), unsigned(a.n)), kThreads, 0, st>>>(d);
      check_launch("split_attention_uspec");
    }
  }
  split_main_kernel<<<dim3(head_blocks, unsigned(plan.n_total), unsigned(a.n)), kThreads, smem, st>>>(d);
  check_launch("split_attention_main");
  const dim3 cgrid(unsigned(a.n_heads), unsigned(a.n));
  if (combine_threads(d.fitted && d.L.T > 0) == kCombineThreads)
    split_combine_kernel<kCombineThreads><<<cgrid, kCombineThreads, csmem, st>>>(d);
  else
    split_combine_kernel<kThreads><<<cgrid, kThreads, csmem, st>>>(d);
  check_launch("split_attention_combine");
}

size_t split_rows_bytes(const SplitLayerDev& L, int n, int pos0) {
  return sizeof(float) * 2 * size_t(before_rows(L, pos0) + n) * L.row_len();
}

size_t split_rows_workspace_bytes(const SplitLayerDev& L, int n, int pos0, int n_heads, int sm_count) {
  AttentionShape s{n_heads, L.kvh, L.d, 1.0f};
  return sizeof(float) * attention_workspace_floats(n, s, before_rows(L, pos0) + n, sm_count);
}

void split_attention_rows(const SplitAttentionArgs& a, void* rows, int sm_count, cudaStream_t st) {
  if (a.n <= 0) return;
  const SplitLayerDev& L = a.L;
  const int before = before_rows(L, a.pos0), total = before + a.n;
  float* kr = static_cast<float*>(rows);
  float* vr = kr + size_t(total) * L.row_len();
  split_rows_kernel<<<unsigned(total), kThreads, 0, st>>>(L, a.k, a.v, a.pos0, a.fitted, kr, vr);
  check_launch("split_attention_rows");
  const int M = L.middle_len(a.pos0);
  if (a.fitted && M > 0) {
    const size_t mid = size_t(L.sink_len(a.pos0)) * L.row_len();
    reconstruct_into_rows(L, L.k, M, kr + mid, st);
    reconstruct_into_rows(L, L.v, M, vr + mid, st);
  }
  AttentionArgs att{};
  att.q = a.q;
  att.out = a.out;
  att.k = kr;
  att.v = vr;
  att.f16 = false;
  att.n = a.n;
  att.pos0 = before;
  att.pos0_dev = nullptr;
  att.max_len = total;
  att.s = AttentionShape{a.n_heads, L.kvh, L.d, a.scale};
  att.workspace = static_cast<float*>(a.workspace);
  attention(att, sm_count, st);
}

}  // namespace fkv::cuda
