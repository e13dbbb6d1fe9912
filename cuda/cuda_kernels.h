// Host-side launchers of the CUDA kernels (implemented in the *.cu files). All launch on `stream` and return
// at once; a launch failure throws fkv::Error through check_launch.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace fkv::cuda {

// True when the matvec/dequant kernels know the type (every GgmlType of ggml_type.h).
bool weight_type_supported(GgmlType type);

// How the backend holds a weight's bytes: as in the GGUF file, or Q4_0 rows repacked into runs of 8 blocks
// (quant_device.cuh Q4_0x8) by upload_weight, for aligned loads in the decode matvec.
enum class WeightLayout : int32_t { kGguf = 0, kQ4_0x8 = 1 };
// The layout upload_weight gives a weight of this type and row length.
WeightLayout upload_layout(GgmlType type, int64_t cols);

// Launch the F16/BF16 and Q4_0x8 decode matvecs as programmatic dependent launches (pdl.cuh; sm_90+):
// they load their first weights while the kernel before them finishes. chain (with on; pdl.cuh): the add +
// RMSNorm launches are programmatic too, and the Q4_0x8 matvec lets them launch at its beginning.
// Process-wide; the backend sets it.
void set_programmatic_launch(bool on, bool chain);

// The most local memory (bytes per thread) of the decode matvec kernels the decode step launches by default
// (persistent F16/BF16, with and without the RoPE fold; Q4_0x8). 0 expected: a kernel parameter indexed at
// run time once made every thread copy it to local memory and cost 2-4 us a launch (docs/CUDA.md).
size_t decode_matvec_local_bytes();

// out[r] = sum_c W[r, c] x[c] for one token (matvec.cu). w: rows of row_bytes bytes.
void matvec(GgmlType type, WeightLayout layout, const void* w, int64_t rows, int64_t cols, const float* x,
            float* out, int sm_count, cudaStream_t stream);

// out[m] = W[m] x for count <= 3 matrices of the same type, layout and row length, in one launch (the q, k
// and v projections of a decode step). False, with nothing launched, when the type has no such kernel.
bool matvec_fused(GgmlType type, WeightLayout layout, int count, const void* const* w, const int64_t* rows,
                  int64_t cols, const float* x, float* const* out, int sm_count, cudaStream_t stream);

// out[r] = silu(gate[r]·x)·(up[r]·x) and up_out[r] = up[r]·x for rows r (the gate/up projections and the
// SwiGLU of a decode step, one launch). False, with nothing launched, when the type and shape have no such kernel.
bool matvec_gated(GgmlType type, WeightLayout layout, const void* gate, const void* up, int64_t rows, int64_t cols,
                  const float* x, float* out, float* up_out, int sm_count, cudaStream_t stream);

// The q, k and v projections of a decode step (w, rows, out: q, k, v; k and v of equal rows, each a multiple
// of head_dim) with the RoPE of q and k and the cache store of k and v folded into the same launch: the
// results of matvec_fused then rope_store. Only where the kernel computes both rows of a RoPE pair in one
// warp (Q4_0x8 with 2 rows a warp, the persistent F16/BF16 kernel); otherwise false, with nothing launched.
struct QkvRope {
  const float* freqs;  // [head_dim / 2], rope_frequency()
  int head_dim;
  int pos0;             // the token's position (ignored when pos0_dev is set)
  const int* pos0_dev;  // the decode graph's position scalar
  bool f16;             // cache type
  void* k_cache;
  void* v_cache;
};
bool matvec_qkv_rope(GgmlType type, WeightLayout layout, const void* const* w, const int64_t* rows,
                     int64_t cols, const float* x, float* const* out, const QkvRope& rope, int sm_count,
                     cudaStream_t stream);

// Decodes rows [row0, row0 + n_rows) of W into dst (dequant.cu): f16 for `to_half`, else fp32.
void dequantize_rows(GgmlType type, WeightLayout layout, const void* w, int64_t row0, int64_t n_rows, int64_t cols,
                     void* dst, bool to_half, cudaStream_t stream);
// out[i, :] = dequantize(table row ids[i]); ids out of range give NaN rows (the host validates ids first).
void embed(GgmlType type, WeightLayout layout, const void* table, int64_t rows, int64_t cols, const int32_t* ids,
           int n, float* out, cudaStream_t stream);
// fp32 -> f16 (round to nearest even), count values.
void to_half(const float* src, int64_t count, void* dst, cudaStream_t stream);

// elementwise.cu
void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out, cudaStream_t stream);
// freqs: [head_dim / 2] from rope_frequency(); pos0 read from *pos0_dev when non-null (graph replay).
void rope(float* x, int n, int n_heads, int head_dim, int pos0, const int* pos0_dev, const float* freqs,
          cudaStream_t stream);
// One decode row: sum_out = a + b (may alias a or b), out = rms_norm(sum_out) * w, in one launch. False, with
// nothing launched, when dim or the alignment does not suit the kernel.
bool add_rms_norm(const float* a, const float* b, float* sum_out, const float* w, int dim, float eps, float* out,
                  cudaStream_t stream);
// One decode token: rope of q [q_heads, head_dim] and k [kv_heads, head_dim] in place, then k and v written to
// cache row pos0 (f16 or fp32), in one launch; the results of rope, rope, kv_store, kv_store.
void rope_store(float* q, int q_heads, float* k, const float* v, int kv_heads, int head_dim, int pos0,
                const int* pos0_dev, const float* freqs, bool f16, void* k_cache, void* v_cache,
                cudaStream_t stream);
void swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t stream);
void add(const float* a, const float* b, int64_t count, float* out, cudaStream_t stream);
// Writes n rows of row_len values to cache rows pos0.. (f16 with round-to-nearest-even, or fp32).
void kv_store(const float* src, int n, int64_t row_len, int pos0, const int* pos0_dev, bool f16, void* cache,
              cudaStream_t stream);

// attention.cu. Scratch for the split-KV partials: attention_workspace_floats() floats.
struct AttentionArgs {
  const float* q;
  float* out;
  const void* k;
  const void* v;
  bool f16;  // cache type
  int n;     // query tokens
  int pos0;  // position of query 0 (ignored when pos0_dev is set)
  const int* pos0_dev;
  int max_len;  // an upper bound of pos0 + n (fixes the split count, so that a graph replays unchanged)
  AttentionShape s;
  float* workspace;
  // Zeroed device counters (n_merge_counters of them, left zeroed by every launch) that let the decode
  // kernel merge its splits in its last block (attention.cu merges_in_decode); null: a combine launch.
  unsigned* merge_counters = nullptr;
  int n_merge_counters = 0;
};
size_t attention_workspace_floats(int n, const AttentionShape& s, int max_len, int sm_count);
void attention(const AttentionArgs& a, int sm_count, cudaStream_t stream);
// Which decode attention kernel and split merge run: 2 (attention_decode_kernels.cuh, the default) or 1 (the
// first versions; FKV_CUDA_ATTN_V2=0). set_attention_version(1 or 2) overrides the environment process-wide
// (tests run both), 0 returns to it.
void set_attention_version(int version);
int attention_version();
// Whether decode attention (version 2) merges its splits in the kernel's last block rather than in a combine
// launch: on by default, FKV_CUDA_ATTN_MERGE_LAST=0 turns it off. set_attention_merge_last(1 or 0) overrides
// the environment process-wide (tests), -1 returns to it.
void set_attention_merge_last(int on);

}  // namespace fkv::cuda
