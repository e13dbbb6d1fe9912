#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/split_kv_kernels.h"
#include "fourier/fourier_basis.h"
#include "fourier/fourier_transform.h"
#include "model/quant.h"
#include "util/error.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace fkv {
namespace {

class CpuBuffer : public DeviceBuffer {
 public:
  explicit CpuBuffer(size_t bytes)
      : DeviceBuffer(bytes), data_(new (std::nothrow) uint8_t[bytes ? bytes : 1]) {}
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  bool ok() const { return data_ != nullptr; }

 private:
  std::unique_ptr<uint8_t[]> data_;
};

const uint8_t* bytes_of(const DeviceBuffer& b) {
  return static_cast<const CpuBuffer&>(b).data();
}
uint8_t* bytes_of(DeviceBuffer& b) {
  return static_cast<CpuBuffer&>(b).data();
}
const float* floats_of(const DeviceBuffer& b) {
  return reinterpret_cast<const float*>(bytes_of(b));
}
float* floats_of(DeviceBuffer& b) {
  return reinterpret_cast<float*>(bytes_of(b));
}

void check_range(const DeviceBuffer& b, size_t offset, size_t bytes, const char* op) {
  require(offset <= b.size() && bytes <= b.size() - offset, ErrorCode::kInvalidArgument,
          std::string(op) + ": range past the end of the buffer");
}

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads) {}

  std::string name() const override { return "cpu"; }
  std::string device_name() const override { return "CPU (" + std::to_string(pool_.size()) + " threads)"; }

  BufferPtr alloc(size_t bytes, const std::string& what) override {
    auto buf = std::make_shared<CpuBuffer>(bytes);
    require(buf->ok(), ErrorCode::kOutOfMemory,
            "cannot allocate " + std::to_string(bytes) + " bytes of host memory for " + what);
    return buf;
  }
  void upload(DeviceBuffer& dst, size_t offset, const void* src, size_t bytes) override {
    check_range(dst, offset, bytes, "upload");
    std::memcpy(bytes_of(dst) + offset, src, bytes);
  }
  void download(const DeviceBuffer& src, size_t offset, void* dst, size_t bytes) override {
    check_range(src, offset, bytes, "download");
    std::memcpy(dst, bytes_of(src) + offset, bytes);
  }
  void copy(const DeviceBuffer& src, size_t src_offset, DeviceBuffer& dst, size_t dst_offset,
            size_t bytes) override {
    check_range(src, src_offset, bytes, "copy");
    check_range(dst, dst_offset, bytes, "copy");
    std::memmove(bytes_of(dst) + dst_offset, bytes_of(src) + src_offset, bytes);
  }
  void synchronize() override {}

  void embed(const Weight& table, const DeviceBuffer& tokens, int n, DeviceBuffer& out) override {
    const int32_t* ids = reinterpret_cast<const int32_t*>(bytes_of(tokens));
    const size_t row = row_bytes(table.type, table.cols);
    for (int i = 0; i < n; ++i) {
      require(ids[i] >= 0 && ids[i] < table.rows, ErrorCode::kInvalidArgument,
              "token id " + std::to_string(ids[i]) + " is outside the vocabulary");
      dequantize_row(table.type, bytes_of(*table.buf) + row * size_t(ids[i]),
                     floats_of(out) + size_t(i) * table.cols, table.cols);
    }
  }

  void rms_norm(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim, float eps,
                DeviceBuffer& out) override {
    cpu::rms_norm(floats_of(x), floats_of(w), n, dim, eps, floats_of(out));
  }

  void matmul(const Weight& w, const DeviceBuffer& x, int n, DeviceBuffer& out) override {
    cpu::matmul(pool_, w.type, bytes_of(*w.buf), w.rows, w.cols, floats_of(x), n, floats_of(out));
  }

  void rope(DeviceBuffer& x, int n, int n_heads, int pos0, const RopeParams& p) override {
    cpu::rope(floats_of(x), n, n_heads, pos0, p);
  }

  void swiglu(const DeviceBuffer& gate, const DeviceBuffer& up, int64_t count, DeviceBuffer& out) override {
    const float* g = floats_of(gate);
    const float* u = floats_of(up);
    float* o = floats_of(out);
    for (int64_t i = 0; i < count; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }

  void add(const DeviceBuffer& a, const DeviceBuffer& b, int64_t count, DeviceBuffer& out) override {
    const float* pa = floats_of(a);
    const float* pb = floats_of(b);
    float* o = floats_of(out);
    for (int64_t i = 0; i < count; ++i) o[i] = pa[i] + pb[i];
  }

  void kv_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                KvLayer& cache) override {
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull,
            "KV cache holds " + std::to_string(cache.capacity) + " positions; asked to store up to " +
                std::to_string(pos0 + n));
    const size_t row = size_t(s.n_kv_heads) * s.head_dim;
    cpu::store_rows(floats_of(k), n, row, cache.type, bytes_of(*cache.k), size_t(pos0));
    cpu::store_rows(floats_of(v), n, row, cache.type, bytes_of(*cache.v), size_t(pos0));
  }

  void attention(const DeviceBuffer& q, int n, int pos0, const AttentionShape& s, const KvLayer& cache,
                 DeviceBuffer& out) override {
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull, "attention past the KV cache");
    cpu::attention(pool_, floats_of(q), n, pos0, s, cache.type, bytes_of(*cache.k), bytes_of(*cache.v),
                   floats_of(out));
  }

  void split_kv_append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                       SplitKvLayer& cache) override {
    cpu::HostSplitPart hk = host_part(cache.k), hv = host_part(cache.v);
    cpu::split_kv_append(floats_of(k), floats_of(v), n, pos0, s, cache, hk, hv);
  }

  void split_attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                       const AttentionShape& s, const SplitKvLayer& cache, SplitAttentionPath path,
                       DeviceBuffer& out) override {
    cpu::split_attention(&pool_, floats_of(q), floats_of(k), floats_of(v), n, pos0, s, cache,
                         host_part(cache.k), host_part(cache.v), path, floats_of(out));
  }

  void fourier_project(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                       DeviceBuffer& coef) override {
    fkv::fourier_project(FourierBasis(period, n_freq), floats_of(values), rows, n_comp, n_comp, m0,
                         floats_of(coef));
  }
  void fourier_accumulate(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                          DeviceBuffer& coef) override {
    fkv::fourier_accumulate(FourierBasis(period, n_freq), floats_of(values), rows, n_comp, n_comp, m0,
                            floats_of(coef));
  }

 private:
  static cpu::HostSplitPart host_part(const SplitKvPart& p) {
    auto b = [](DeviceBuffer* x) { return x ? bytes_of(*x) : nullptr; };
    auto f = [](DeviceBuffer* x) { return x ? floats_of(*x) : nullptr; };
    return {b(p.sink), b(p.window), b(p.kept), f(p.pending), f(p.coef), f(p.norm)};
  }
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(int n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

float* cpu_buffer_floats(DeviceBuffer& buf) {
  return floats_of(buf);
}

}  // namespace fkv
