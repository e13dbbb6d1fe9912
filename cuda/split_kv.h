// The split KV cache ops (backend.h "Split KV cache"; layout in backend/split_kv_layer.h) on the GPU: the
// launchers behind the CUDA backend's split_kv_append, split_attention, fourier_project and
// fourier_accumulate (split_kv_fourier.cu, split_attention.cu), and how their arguments travel in an Op
// record so that a decode step can be replayed as a CUDA graph (docs/CUDA.md "Fourier ops").
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"
#include "cuda_op.h"

namespace fkv::cuda {

// One part (K or V) of a layer's split cache, as device pointers. dims: int32 keep_offset[kvh + 1],
// comp_offset[kvh + 1], keep[nk], comp[nc], then element lists unused here (SplitKvPart::dims_table).
struct SplitPartDev {
  void* sink = nullptr;
  void* window = nullptr;
  void* kept = nullptr;
  float* pending = nullptr;
  float* coef = nullptr;
  float* norm = nullptr;
  const int* dims = nullptr;
  int nk = 0, nc = 0;
};

struct SplitLayerDev {
  bool f16 = true;  // exact parts in f16 (else fp32)
  int kvh = 0, d = 0;
  int S = 0, W = 0, T = 0, N = 0, fit = 0;
  bool lsq = false;
  const float2* table = nullptr;  // (cos, sin)(2π k / T) for k < T: FourierBasis's table (null when T == 0)
  // Chirp-z tables (split_chirp.h) when decode attention evaluates fitted middle spans by FFT (N <= 1024).
  bool chirp = false;
  // The fitted middle by N-point FFTs over column blocks (split_attention_kernels.cuh; N a power of two
  // dividing T, which SplitKvCache makes so): the backend sets it unless FKV_CUDA_MIDDLE_FFT=0 or chirp.
  bool fft = false;
  const float2* chirp_n = nullptr;
  const float2* chirp_m = nullptr;
  const float2* chirp_seg = nullptr;
  const float2* chirp_twiddle = nullptr;
  SplitPartDev k, v;

  __host__ __device__ int row_len() const { return kvh * d; }
  __host__ __device__ int sink_len(int t) const { return t < S ? t : S; }
  __host__ __device__ int window_begin(int t) const { return t - W > S ? t - W : S; }
  __host__ __device__ int middle_len(int t) const {
    if (T <= 0) return 0;
    const int m = t - W - S;
    return m < 0 ? 0 : (m > T ? T : m);
  }
  __host__ __device__ bool fitted(int t) const { return T > 0 && middle_len(t) >= fit; }
  __host__ __device__ int next_refit(int m) const {
    for (int r = fit; r > 0 && r <= T; r *= 2)
      if (r > m) return r;
    return 0;
  }
};

// A layer's sizes and flags, without pointers: the backend then points it at device buffers (checked
// against the layout), the host emulation test at host copies.
inline SplitLayerDev split_layer_sizes(const SplitKvLayer& c, const AttentionShape& s) {
  SplitLayerDev L;
  L.f16 = c.type == KvType::kF16;
  L.kvh = s.n_kv_heads;
  L.d = s.head_dim;
  L.S = c.sink;
  L.W = c.window;
  L.T = c.middle;
  L.N = c.n_freq;
  L.fit = c.fit_tokens;
  L.lsq = c.least_squares_norm;
  return L;
}

// (cos, sin)(2π (a·b mod T) / T) from the table, with the exact integer angle index (FourierBasis).
__host__ __device__ inline float2 split_basis(const float2* table, long long a, long long b, int T) {
  return table[(a * b) % T];
}
// w·r as complex numbers: one step of the rotation recurrence that walks the basis along n or m.
__host__ __device__ inline float2 split_rotate(float2 w, float2 r) {
  return make_float2(w.x * r.x - w.y * r.y, w.y * r.x + w.x * r.y);
}
// Rotation steps between exact basis values (the kernels re-seed from the table this often).
constexpr int kSplitSeed = 32;

// Op record fields: p[0..18], i[0..14] hold the layer (pack_layer); each op's own fields follow.
constexpr int kSplitP0 = 19, kSplitI0 = 15;
void pack_layer(const SplitLayerDev& L, Op& op);
SplitLayerDev unpack_layer(const Op& op);

// ---- split_kv_fourier.cu

// What a one-token append does at its position (the host's branch, part of the op record so that a graph
// replays only steps that take the same branch; kernels read the position itself from the device).
enum class AppendEvent : int {
  kNone = 0,     // no position leaves the window (or no middle)
  kPending = 1,  // the leaving row's compressed dims go to `pending`
  kFit = 2,      // ... and the middle reaches fit_tokens: the fit
  kAccumulate = 3,
  kRefit = 4,  // accumulate, and the middle reaches fit_tokens·2^k: refit
  kMany = 5,   // several tokens
};
AppendEvent append_event(const SplitLayerDev& L, int n, int pos0);

// Scratch of split_append: the leaving rows' compressed dims [n, nc] for K and V, then the refit partials.
size_t append_scratch_bytes(const SplitLayerDev& L, int n);

// split_kv_append (backend.h). pos0_dev: read the position from the device (graph replay of a one-token
// step whose event is kNone, kPending or kAccumulate); the host's pos0 then only chose the branch.
void split_append(const SplitLayerDev& L, const float* k, const float* v, int n, int pos0,
                  const int* pos0_dev, void* scratch, cudaStream_t st);

// fourier_project / fourier_accumulate on values [rows, n_comp] (row stride `stride`), table for `period`.
void fourier_accumulate(const float* values, int rows, int stride, int n_comp, int m0, int period, int n_freq,
                        const float2* table, bool overwrite, float* coef, cudaStream_t st);

// Writes x̂ = a·x̃(m) + b of every compressed dim of middle rows 0..M-1 into rows [M, kvh·d] fp32 at
// out_rows (row m at out_rows + m·kvh·d, dim comp[c] of its head): the materialised middle.
void reconstruct_into_rows(const SplitLayerDev& L, const SplitPartDev& P, int M, float* out_rows,
                           cudaStream_t st);

// ---- split_attention.cu

// The one-pass decode kernels serve up to this many query tokens; more use the materialised rows.
constexpr int kSplitDirectMaxTokens = 8;

struct SplitAttentionArgs {
  SplitLayerDev L;
  const float* q;
  const float* k;  // the chunk's own rows, fp32 [n, kvh·d]
  const float* v;
  float* out;
  int n, pos0;
  const int* pos0_dev;  // direct path only: position from the device (graph replay)
  int n_heads;
  float scale;
  bool fitted;  // L.fitted(pos0): fixed per op record (a graph replays only steps with the same value)
  void* workspace;
};
// Direct (decode) path: workspace bytes for n tokens, sized for the whole cache so that it does not change
// with the position.
size_t split_direct_workspace_bytes(const SplitLayerDev& L, int n, int n_heads, int sm_count);
void split_attention_direct(const SplitAttentionArgs& a, int sm_count, cudaStream_t st);

// Materialised path (prefill chunks, kReference/kFused): every visible row written out in fp32, then the
// full-cache attention kernels. Bytes of the rows (K and V) and of the attention workspace.
size_t split_rows_bytes(const SplitLayerDev& L, int n, int pos0);
size_t split_rows_workspace_bytes(const SplitLayerDev& L, int n, int pos0, int n_heads, int sm_count);
void split_attention_rows(const SplitAttentionArgs& a, void* rows, int sm_count, cudaStream_t st);

// Called once per backend: raises the kernels' dynamic shared memory limits (not allowed during a capture).
void split_kv_init();

}  // namespace fkv::cuda
