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
#include <string>

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
};

struct AttentionShape {
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
};

enum class KvType { kF16, kF32 };
size_t kv_type_bytes(KvType t);

// One layer's full KV cache: K and V, each [capacity, n_kv_heads, head_dim] in `type`; row r holds position r.
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

  // out[i, :] = dequantize(table row tokens[i]) for i < n. tokens: int32 [n], each in [0, table.rows).
  virtual void embed(const Weight& table, const DeviceBuffer& tokens, int n, DeviceBuffer& out) = 0;

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
  virtual void kv_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                        KvLayer& cache) = 0;

  // Causal attention over a full cache. q, out: [n, s.n_heads, s.head_dim]. Query i (position pos0 + i)
  // attends cache rows 0 .. pos0+i: out = softmax(scale * q·K^T) V, with the cache values read in its type and
  // everything else in fp32.
  virtual void attention(const DeviceBuffer& q, int n, int pos0, const AttentionShape& s, const KvLayer& cache,
                         DeviceBuffer& out) = 0;
};

}  // namespace fkv
