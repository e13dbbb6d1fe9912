// The backend interface: device buffers and the fixed set of ops a LLaMA forward pass is made of.
//
// Each op's semantics are defined here once and implemented by the CPU backend (src/backend/cpu), the
// reference every other backend is tested against. Conventions for every op:
//  - activations are fp32, row-major, rows contiguous: a [n, dim] tensor is n rows of dim floats;
//  - weights are [rows, cols] matrices in a GGUF storage type, each row `cols` values (GGUF dims[0]);
//  - accumulation is fp32; outputs never alias inputs unless the op says so;
//  - ops may run asynchronously: download() and synchronize() wait for everything issued before them.
// Errors are fkv::Error (kOutOfMemory naming the allocation, kBackend for driver failures).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/split_kv_layer.h"
#include "model/ggml_type.h"

namespace fkv {

class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  size_t size() const { return size_; }

 protected:
  explicit DeviceBuffer(size_t size) : size_(size) {}

 private:
  size_t size_;
};
using BufferPtr = std::shared_ptr<DeviceBuffer>;

// A weight matrix (or embedding table: rows = vocabulary, cols = model dim).
struct Weight {
  DeviceBuffer* buf = nullptr;
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
};

struct RopeParams {
  int head_dim = 0;
  float theta = 10000.0f;
  // Llama 3 frequency scaling (rope_scaling.type = llama3); off when llama3 is false.
  bool llama3 = false;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_context = 8192;
  // Per-pair frequency divisors from a `rope_freqs.weight` tensor (how llama.cpp stores Llama 3.1 scaling);
  // empty when the file has none. Applied instead of the llama3 formula when present.
  std::vector<float> freq_factors;
};

struct AttentionShape {
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
};

enum class KvType { kF16, kF32 };
size_t kv_type_bytes(KvType t);

// One layer's full KV cache: K and V, each [capacity, n_kv_heads, head_dim] in `type`; row r holds position
// r.
struct KvLayer {
  DeviceBuffer* k = nullptr;
  DeviceBuffer* v = nullptr;
  KvType type = KvType::kF16;
  int capacity = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;         // "cpu", "vulkan", "cuda"
  virtual std::string device_name() const = 0;  // human-readable device

  // Memory. `what` names the allocation in the out-of-memory error. Contents start undefined.
  virtual BufferPtr alloc(size_t bytes, const std::string& what) = 0;
  virtual void upload(DeviceBuffer& dst, size_t offset, const void* src, size_t bytes) = 0;
  virtual void download(const DeviceBuffer& src, size_t offset, void* dst, size_t bytes) = 0;
  // dst[dst_offset..+bytes) = src[src_offset..+bytes); the ranges must not overlap.
  virtual void copy(const DeviceBuffer& src, size_t src_offset, DeviceBuffer& dst, size_t dst_offset,
                    size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Uploads a weight matrix: `bytes` of w.rows rows of w.type, as in the GGUF file, into w.buf from offset 0.
  // A backend may keep them in a layout of its own that only its ops read (CUDA and Vulkan repack Q4_0 rows
  // of a multiple of 256 values for aligned loads: model/quant.h Q4_0x8); download() of such a buffer returns
  // that layout. The default is upload().
  virtual void upload_weight(const Weight& w, const void* data, size_t bytes) { upload(*w.buf, 0, data, bytes); }
  // A promise about the ops that follow, up to the next download() or synchronize(): they are one forward
  // step at positions [pos0, pos0 + n) that writes each activation buffer before reading it (only the weights,
  // the token ids uploaded for it and the KV cache carry anything in). A backend that replays repeated steps
  // may then start the replay at the step's first op instead of its last, while the host is still issuing the
  // rest (CUDA). A backend may ignore it (the default); results must not change either way.
  virtual void begin_step(int pos0, int n) {
    (void)pos0;
    (void)n;
  }

  // out[i, :] = dequantize(table row tokens[i]) for i < n. tokens: int32 [n], each in [0, table.rows).
  virtual void embed(const Weight& table, const DeviceBuffer& tokens, int n, DeviceBuffer& out) = 0;
  // Greedy decoding's choice: the index of the first largest value of x[0, n) (NaN ignored), computed where
  // x lives so that only the index comes back. nullopt: not done here (the default), or no value of x is
  // above -inf; the caller then reads x back and decides.
  virtual std::optional<int32_t> argmax(const DeviceBuffer& x, int64_t n) {
    (void)x;
    (void)n;
    return std::nullopt;
  }

  // out[i, :] = x[i, :] / sqrt(mean_j(x[i, j]^2) + eps) * w[:]. x, out: [n, dim]; w: fp32 [dim].
  virtual void rms_norm(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim, float eps,
                        DeviceBuffer& out) = 0;

  // out[i, r] = sum_c W[r, c] * x[i, c]. x: [n, w.cols]; out: [n, w.rows]. n = 1 is the decode matvec.
  virtual void matmul(const Weight& w, const DeviceBuffer& x, int n, DeviceBuffer& out) = 0;

  // In place on x: [n, n_heads, p.head_dim]. Token i is at position pos0 + i. For each pair (2k, 2k+1) of a
  // head: angle = pos * freq_k, freq_k = theta^(-2k/head_dim) (then Llama 3 scaling when p.llama3),
  // (a, b) -> (a cos - b sin, a sin + b cos). GGUF's llama convention (adjacent pairs).
  virtual void rope(DeviceBuffer& x, int n, int n_heads, int pos0, const RopeParams& p) = 0;

  // out[i] = silu(gate[i]) * up[i] for i < count, silu(g) = g / (1 + exp(-g)). out may alias gate or up.
  virtual void swiglu(const DeviceBuffer& gate, const DeviceBuffer& up, int64_t count, DeviceBuffer& out) = 0;

  // out[i] = a[i] + b[i] for i < count. out may alias a or b.
  virtual void add(const DeviceBuffer& a, const DeviceBuffer& b, int64_t count, DeviceBuffer& out) = 0;

  // Writes k, v: fp32 [n, s.n_kv_heads, s.head_dim] into cache rows pos0 .. pos0+n-1 (converted to the
  // cache's type, f16 rounding to nearest even). Requires pos0 + n <= cache.capacity.
  virtual void kv_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                        const AttentionShape& s, KvLayer& cache) = 0;

  // Causal attention over a full cache. q, out: [n, s.n_heads, s.head_dim]. Query i (position pos0 + i)
  // attends cache rows 0 .. pos0+i: out = softmax(scale * q·K^T) V, with the cache values read in its type
  // and everything else in fp32.
  virtual void attention(const DeviceBuffer& q, int n, int pos0, const AttentionShape& s,
                         const KvLayer& cache, DeviceBuffer& out) = 0;

  // ---- Split KV cache: the `window` and `fourier` policies (backend/split_kv_layer.h has the layout,
  // ../shared/FOURIER.md the math). Unlike the ops above these are not pure virtual: the default runs the
  // CPU reference (backend/cpu/split_kv_kernels.h) on downloaded copies of what the op reads and uploads what
  // it writes. Correct on every backend, slow (whole-layer transfers per call): backends override them.

  // Appends positions pos0 .. pos0+n-1 (k, v: fp32 [n, s.n_kv_heads, s.head_dim], K after RoPE) to a split
  // cache that holds positions 0 .. pos0-1, with the same result as appending them one at a time:
  //  - position p < S goes to sink row p;
  //  - the window keeps the last W positions; positions that leave it (window_begin(pos0) ..
  //    window_begin(pos0+n)-1, oldest first, values rounded to cache.type) enter the middle at m = p - S:
  //    kept dims to `kept` row m; compressed dims to `pending` row m while m < fit_tokens; when
  //    m + 1 == fit_tokens, the fit: coef = projection of pending rows 0..m (fourier_project with m0 = 0),
  //    norm = (μ, ρ, μ̃, ρ̃) of every compressed dim over those rows; after the fit each row is added to coef
  //    (fourier_accumulate at position m), and when the middle reaches fit_tokens·2^k rows (k >= 1, <= T)
  //    the normalisation is refitted over all of them (split_kv_layer.h: next_refit; μ, ρ from running
  //    sum/min/max, μ̃, ρ̃ from reconstructing rows 0..M-1). With cache.middle == 0 leaving positions are
  //    dropped;
  //  - positions >= window_begin(pos0+n) go to the window ring.
  // Throws kContextFull when the cache has a middle and pos0 + n > S + W + T.
  virtual void split_kv_append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                               const AttentionShape& s, SplitKvLayer& cache);

  // Causal attention of q (fp32 [n, s.n_heads, s.head_dim], positions pos0 ..) over a split cache holding
  // positions 0 .. pos0-1 and over the chunk's own k, v (fp32 [n, s.n_kv_heads, s.head_dim], read rounded to
  // cache.type), before split_kv_append commits them. Query i sees the cache's sink, middle and window as
  // they are, then chunk rows 0..i. A middle row's kept dims are exact; its compressed dims are the pending
  // values before the fit, after it x̂(m) = a·x̃(m) + b (split_kv_layer.h, FOURIER.md "Reconstruction").
  // One softmax over all rows (scale s.scale); out: [n, s.n_heads, s.head_dim]. Every `path` computes this
  // function (fp32 rounding aside); kReference with no compressed dims is bit-for-bit attention() on a full
  // cache of cache.type holding the same rows.
  virtual void split_attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n,
                               int pos0, const AttentionShape& s, const SplitKvLayer& cache,
                               SplitAttentionPath path, DeviceBuffer& out);

  // Fourier projection: coef[c, f] = Σ_i values[i, c]·cos(2π f (m0+i) / T), coef[c, N + f] = the same with
  // sin, for f < N. values: fp32 [rows, n_comp]; coef: fp32 [n_comp, 2N], overwritten.
  virtual void fourier_project(const DeviceBuffer& values, int rows, int n_comp, int m0, int period,
                               int n_freq, DeviceBuffer& coef);
  // Coefficient accumulation: the same sums added to coef (rows in order, one at a time).
  virtual void fourier_accumulate(const DeviceBuffer& values, int rows, int n_comp, int m0, int period,
                                  int n_freq, DeviceBuffer& coef);
};

// For a backend whose upload_weight keeps Q4_0 repacked (model/quant.h Q4_0x8): uploads w's GGUF rows
// (w.rows rows of w.type, bytes from `data`) into w.buf through be.upload(), repacked slice_bytes of rows at
// a time so that the host copy stays small.
void upload_repacked_q4_0x8(Backend& be, const Weight& w, const void* data, size_t slice_bytes);

}  // namespace fkv
