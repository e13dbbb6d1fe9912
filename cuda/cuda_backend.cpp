// The CUDA backend class: buffers, transfers, and each op of backend.h turned into an Op record that runs
// through the decode-graph recorder (one-token ops) or at once (everything else).
//
// Choices:
//  - decode matvec: hand-written bandwidth-bound kernels per weight type (matvec.cu);
//  - prefill GEMM: weights dequantized to f16 in row chunks (F16 used in place), activations rounded to f16,
//    cuBLAS GemmEx with fp32 accumulation and fp32 output on the tensor cores. F32 and BF16 weights go
//    through fp32 (BF16 widened to fp32) so that no range is lost. The error of the f16 rounding (about 5e-4
//    relative) is within the tolerance of f16 storage; prefill is compute bound, and cuBLAS is the fastest
//    correct GEMM we can have without writing one;
//  - attention: flash-decoding for few tokens, a tiled kernel for prefill, both split over the cache.
#include "cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "cuda_buffer.h"
#include "cuda_check.h"
#include "cuda_kernels.h"
#include "decode_graph.h"
#include "fourier/fourier_basis.h"
#include "model/quant.h"
#include "split_chirp.h"
#include "split_kv.h"
#include "step_timer.h"
#include "util/error.h"

namespace fkv {
namespace cuda {
namespace {

static_assert(kSplitP0 + 5 <= int(sizeof(Op::p) / sizeof(Op::p[0])) &&
                  kSplitI0 + 3 <= int(sizeof(Op::i) / sizeof(Op::i[0])),
              "the split-cache ops' fields must fit an Op record");

constexpr int kMatvecMaxTokens = 2;                     // more tokens than this: dequantize + GEMM
constexpr size_t kGemmScratchElems = size_t(32) << 20;  // weight rows decoded per GEMM chunk (64 MiB of f16)
constexpr int kMergeCounters = 1024;  // decode attention's arrival counters: (token, KV head x head chunk)

void check_range(const DeviceBuffer& b, size_t offset, size_t bytes, const char* op) {
  require(offset <= b.size() && bytes <= b.size() - offset, ErrorCode::kInvalidArgument,
          std::string(op) + ": range past the end of the buffer");
}

void check_floats(const DeviceBuffer& b, int64_t count, const char* op, const char* which) {
  require(count >= 0 && size_t(count) * sizeof(float) <= b.size(), ErrorCode::kInvalidArgument,
          std::string(op) + ": buffer '" + which + "' is smaller than the op's size");
}

bool env_flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    FKV_CUDA_CHECK(cudaSetDevice(device_), "selecting CUDA device " + std::to_string(device_));
    cudaDeviceProp prop{};
    FKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_), "reading the device properties");
    device_name_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                   std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
    sm_count_ = prop.multiProcessorCount;
    FKV_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the CUDA stream");
    FKV_CUDA_CHECK(cublasCreate(&cublas_), "creating the cuBLAS handle");
    FKV_CUDA_CHECK(cublasSetStream(cublas_, stream_), "binding cuBLAS to the stream");
    graph_ = std::make_unique<DecodeGraph>(
        stream_,
        [this](const Op* ops, size_t count, bool capturing) {
          const size_t fused = capturing && fuse_ ? run_fused(ops, count) : 0;
          if (fused == 0) run(ops[0], capturing);
          fused_ops_ += int(fused);
          return fused == 0 ? size_t(1) : fused;
        },
        env_flag("FKV_CUDA_GRAPH", true), env_flag("FKV_CUDA_EARLY_REPLAY", true));
    split_kv_init();
    // Zeroed once; every decode attention launch leaves them zeroed (attn2::merge_last).
    merge_counters_ =
        std::make_unique<CudaBuffer>(kMergeCounters * sizeof(unsigned), "attention merge counters");
    FKV_CUDA_CHECK(cudaMemsetAsync(merge_counters_->data(), 0, kMergeCounters * sizeof(unsigned), stream_),
                   "zeroing the attention merge counters");
    split_graph_ = env_flag("FKV_CUDA_SPLIT_GRAPH", true);
    native_split_ = env_flag("FKV_CUDA_SPLIT", true);
    chirp_ = env_flag("FKV_CUDA_CHIRP", false);
    middle_fft_ = env_flag("FKV_CUDA_MIDDLE_FFT", true);
    fuse_ = env_flag("FKV_CUDA_FUSE", true);
    gated_ = env_flag("FKV_CUDA_GATED", true);
    rope_fold_ = env_flag("FKV_CUDA_ROPE_FOLD", true);
    pinned_download_ = env_flag("FKV_CUDA_PINNED_DOWNLOAD", true);
    for (cudaEvent_t& e : download_events_)
      FKV_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating a read-back event");
    set_programmatic_launch(prop.major >= 9 && env_flag("FKV_CUDA_PDL", true), env_flag("FKV_CUDA_PDL_CHAIN", true));
  }

  ~CudaBackend() override {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_);
    if (pinned_) (void)cudaFreeHost(pinned_);
    for (cudaEvent_t e : download_events_)
      if (e) (void)cudaEventDestroy(e);
    graph_.reset();
    merge_counters_.reset();
    rope_tables_.clear();
    basis_tables_.clear();
    chirp_tables_.clear();
    if (cublas_) (void)cublasDestroy(cublas_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }
  int graph_replays() const { return graph_->replays(); }
  int early_launches() const { return graph_->early_launches(); }
  int fused_ops() const { return fused_ops_; }
  int rope_folds() const { return rope_folds_; }

  BufferPtr alloc(size_t bytes, const std::string& what) override {
    use_device();
    return std::make_shared<CudaBuffer>(bytes, what);
  }

  void upload(DeviceBuffer& dst, size_t offset, const void* src, size_t bytes) override {
    check_range(dst, offset, bytes, "upload");
    use_device();
    graph_->host_write();
    if (bytes == 0) return;
    // From pageable memory the copy is staged before the call returns, so src may be reused at once.
    FKV_CUDA_CHECK(
        cudaMemcpyAsync(static_cast<char*>(dev(dst)) + offset, src, bytes, cudaMemcpyHostToDevice, stream_),
        "uploading " + std::to_string(bytes) + " bytes");
  }

  void upload_weight(const Weight& w, const void* data, size_t bytes) override {
    const WeightLayout layout = upload_layout(w.type, w.cols);
    if (layout == WeightLayout::kGguf || bytes != size_t(w.rows) * row_bytes(w.type, w.cols))
      return upload(*w.buf, 0, data, bytes);
    upload_repacked_q4_0x8(*this, w, data, 64u << 20);
    static_cast<CudaBuffer&>(*w.buf).set_layout(int32_t(layout));
  }

  void download(const DeviceBuffer& src, size_t offset, void* dst, size_t bytes) override {
    check_range(src, offset, bytes, "download");
    use_device();
    step_timer_.at_download(stream_);
    const int replays = graph_->replays();
    graph_->end_step(generation());
    step_timer_.after_launch(stream_);
    // Small read-backs (a token's logits) go through a pinned buffer: a copy to pageable memory is staged
    // by the driver in pieces, which is slower and sits between the GPU's last kernel and the host's next step.
    const bool staged = bytes > 0 && bytes <= kPinnedDownloadMax && pinned_download_ && ensure_pinned(bytes);
    const char* from = static_cast<const char*>(dev(src)) + offset;
    if (staged) {
      download_staged(from, static_cast<char*>(dst), bytes);
    } else {
      if (bytes)
        FKV_CUDA_CHECK(cudaMemcpyAsync(dst, from, bytes, cudaMemcpyDeviceToHost, stream_),
                       "downloading " + std::to_string(bytes) + " bytes");
      step_timer_.after_copy(stream_);
      FKV_CUDA_CHECK(cudaStreamSynchronize(stream_), "waiting for the GPU (download)");
    }
    step_timer_.at_return(graph_->replays() > replays);
  }

  void begin_step(int pos0, int n) override {
    use_device();
    step_timer_.at_begin(stream_);
    if (n == 1) graph_->begin_step(pos0);  // only one-token steps are ever replayed
  }

  void copy(const DeviceBuffer& src, size_t src_offset, DeviceBuffer& dst, size_t dst_offset,
            size_t bytes) override {
    use_device();
    check_range(src, src_offset, bytes, "copy");
    check_range(dst, dst_offset, bytes, "copy");
    Op op;
    op.kind = OpKind::kCopy;
    op.p[0] = static_cast<const char*>(dev(src)) + src_offset;
    op.p[1] = static_cast<char*>(dev(dst)) + dst_offset;
    op.i[0] = int64_t(bytes);
    graph_->submit(op, generation());
  }

  void synchronize() override {
    use_device();
    graph_->end_step(generation());
    FKV_CUDA_CHECK(cudaStreamSynchronize(stream_), "waiting for the GPU");
  }

  void embed(const Weight& table, const DeviceBuffer& tokens, int n, DeviceBuffer& out) override {
    use_device();
    check_weight(table, "embed");
    require(size_t(n) * sizeof(int32_t) <= tokens.size(), ErrorCode::kInvalidArgument,
            "embed: too few token ids");
    check_floats(out, int64_t(n) * table.cols, "embed", "out");
    Op op;
    op.kind = OpKind::kEmbed;
    op.p[0] = dev(*table.buf);
    op.p[1] = dev(tokens);
    op.p[2] = dev(out);
    op.i[0] = int64_t(table.type);
    op.i[1] = table.rows;
    op.i[2] = table.cols;
    op.i[3] = n;
    op.i[4] = layout_of(table);
    submit(op, n == 1);
  }

  void rms_norm(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim, float eps,
                DeviceBuffer& out) override {
    use_device();
    check_floats(x, int64_t(n) * dim, "rms_norm", "x");
    check_floats(w, dim, "rms_norm", "w");
    check_floats(out, int64_t(n) * dim, "rms_norm", "out");
    Op op;
    op.kind = OpKind::kRmsNorm;
    op.p[0] = dev(x);
    op.p[1] = dev(w);
    op.p[2] = dev(out);
    op.i[0] = n;
    op.i[1] = dim;
    op.f[0] = eps;
    submit(op, n == 1);
  }

  void matmul(const Weight& w, const DeviceBuffer& x, int n, DeviceBuffer& out) override {
    use_device();
    check_weight(w, "matmul");
    check_floats(x, int64_t(n) * w.cols, "matmul", "x");
    check_floats(out, int64_t(n) * w.rows, "matmul", "out");
    if (n <= kMatvecMaxTokens) {
      for (int i = 0; i < n; ++i) {
        Op op;
        op.kind = OpKind::kMatvec;
        op.p[0] = dev(*w.buf);
        op.p[1] = dev_f(x) + size_t(i) * w.cols;
        op.p[2] = dev_f(out) + size_t(i) * w.rows;
        op.i[0] = int64_t(w.type);
        op.i[1] = w.rows;
        op.i[2] = w.cols;
        op.i[3] = layout_of(w);
        submit(op, n == 1);
      }
      return;
    }
    graph_->barrier();
    gemm(w, dev_f(x), n, dev_f(out));
  }

  void rope(DeviceBuffer& x, int n, int n_heads, int pos0, const RopeParams& p) override {
    use_device();
    require(p.head_dim > 0 && p.head_dim % 2 == 0, ErrorCode::kInvalidArgument,
            "rope: head_dim must be even");
    check_floats(x, int64_t(n) * n_heads * p.head_dim, "rope", "x");
    Op op;
    op.kind = OpKind::kRope;
    op.uses_pos = 1;
    op.pos0 = pos0;
    op.p[0] = dev(x);
    op.p[1] = rope_table(p);
    op.i[0] = n;
    op.i[1] = n_heads;
    op.i[2] = p.head_dim;
    submit(op, n == 1);
  }

  void swiglu(const DeviceBuffer& gate, const DeviceBuffer& up, int64_t count, DeviceBuffer& out) override {
    binary_elementwise(OpKind::kSwiglu, "swiglu", gate, up, count, out);
  }

  void add(const DeviceBuffer& a, const DeviceBuffer& b, int64_t count, DeviceBuffer& out) override {
    binary_elementwise(OpKind::kAdd, "add", a, b, count, out);
  }

  // out[i] = f(a[i], b[i]) for the elementwise ops that share one op record (swiglu, add).
  void binary_elementwise(OpKind kind, const char* name, const DeviceBuffer& a, const DeviceBuffer& b,
                          int64_t count, DeviceBuffer& out) {
    use_device();
    check_floats(a, count, name, "a");
    check_floats(b, count, name, "b");
    check_floats(out, count, name, "out");
    Op op;
    op.kind = kind;
    op.p[0] = dev(a);
    op.p[1] = dev(b);
    op.p[2] = dev(out);
    op.i[0] = count;
    submit(op, true);
  }

  void kv_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                KvLayer& cache) override {
    use_device();
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull,
            "KV cache holds " + std::to_string(cache.capacity) + " positions; asked to store up to " +
                std::to_string(pos0 + n));
    const int64_t row = int64_t(s.n_kv_heads) * s.head_dim;
    require(size_t(cache.capacity) * row * kv_type_bytes(cache.type) <= cache.k->size() &&
                size_t(cache.capacity) * row * kv_type_bytes(cache.type) <= cache.v->size(),
            ErrorCode::kInvalidArgument, "kv_store: cache buffers are smaller than capacity rows");
    check_floats(k, n * row, "kv_store", "k");
    check_floats(v, n * row, "kv_store", "v");
    for (int which = 0; which < 2; ++which) {
      Op op;
      op.kind = OpKind::kKvStore;
      op.uses_pos = 1;
      op.pos0 = pos0;
      op.p[0] = dev(which == 0 ? k : v);
      op.p[1] = dev(which == 0 ? *cache.k : *cache.v);
      op.i[0] = n;
      op.i[1] = row;
      op.i[2] = cache.type == KvType::kF16;
      submit(op, n == 1);
    }
  }

  void attention(const DeviceBuffer& q, int n, int pos0, const AttentionShape& s, const KvLayer& cache,
                 DeviceBuffer& out) override {
    use_device();
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull, "attention past the KV cache");
    check_floats(q, int64_t(n) * s.n_heads * s.head_dim, "attention", "q");
    check_floats(out, int64_t(n) * s.n_heads * s.head_dim, "attention", "out");
    Op op;
    op.kind = OpKind::kAttention;
    op.uses_pos = 1;
    op.pos0 = pos0;
    op.p[0] = dev(q);
    op.p[1] = dev(*cache.k);
    op.p[2] = dev(*cache.v);
    op.p[3] = dev(out);
    // One-token steps size the workspace for the whole cache, so that one allocation serves every step (and
    // a captured graph's pointer stays valid); a growth first runs any deferred op that points at the old
    // one.
    const bool one = n == 1;
    const size_t ws_bytes =
        sizeof(float) * attention_workspace_floats(n, s, one ? cache.capacity : pos0 + n, sm_count_);
    if (one && !decode_ws_.fits(ws_bytes)) graph_->barrier();
    op.p[4] = (one ? decode_ws_ : prefill_ws_).get(ws_bytes, stream_);
    op.i[0] = n;
    op.i[1] = s.n_heads;
    op.i[2] = s.n_kv_heads;
    op.i[3] = s.head_dim;
    op.i[4] = cache.type == KvType::kF16;
    op.i[5] = cache.capacity;
    op.f[0] = s.scale;
    submit(op, n == 1);
  }

  // ---- Split KV cache (split_kv.h). One-token appends and direct attention go through the graph recorder
  // (their record holds the branch the host took, so only steps taking the same branch replay); the rest
  // runs at once.
  void split_kv_append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                       SplitKvLayer& cache) override {
    if (!native_split_) return Backend::split_kv_append(k, v, n, pos0, s, cache);
    use_device();
    require(pos0 >= 0 && n >= 0, ErrorCode::kInvalidArgument, "split_kv_append: negative position or count");
    if (cache.middle > 0)
      require(pos0 + n <= cache.sink + cache.window + cache.middle, ErrorCode::kContextFull,
              "split KV cache holds " + std::to_string(cache.sink + cache.window + cache.middle) +
                  " positions; asked to store up to " + std::to_string(pos0 + n));
    const SplitLayerDev L = split_layer(cache, s, "split_kv_append");
    check_floats(k, int64_t(n) * L.row_len(), "split_kv_append", "k");
    check_floats(v, int64_t(n) * L.row_len(), "split_kv_append", "v");
    if (n == 0) return;
    const AppendEvent event = append_event(L, n, pos0);
    Op op;
    op.kind = OpKind::kSplitAppend;
    op.uses_pos = 1;
    op.pos0 = pos0;
    pack_layer(L, op);
    op.p[kSplitP0] = dev(k);
    op.p[kSplitP0 + 1] = dev(v);
    const size_t bytes = append_scratch_bytes(L, n);
    if (!split_append_ws_.fits(bytes)) graph_->barrier();  // deferred ops may point into the old block
    op.p[kSplitP0 + 2] = split_append_ws_.get(bytes, stream_);
    op.i[kSplitI0] = n;
    op.i[kSplitI0 + 1] = int64_t(event);
    const bool replayable = split_graph_ && (event == AppendEvent::kNone || event == AppendEvent::kPending ||
                                             event == AppendEvent::kAccumulate);
    submit(op, replayable);
  }

  void split_attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                       const AttentionShape& s, const SplitKvLayer& cache, SplitAttentionPath path,
                       DeviceBuffer& out) override {
    if (!native_split_) return Backend::split_attention(q, k, v, n, pos0, s, cache, path, out);
    use_device();
    require(pos0 >= 0 && n >= 0, ErrorCode::kInvalidArgument, "split_attention: negative position or count");
    const SplitLayerDev L = split_layer(cache, s, "split_attention");
    check_floats(q, int64_t(n) * s.n_heads * s.head_dim, "split_attention", "q");
    check_floats(out, int64_t(n) * s.n_heads * s.head_dim, "split_attention", "out");
    check_floats(k, int64_t(n) * L.row_len(), "split_attention", "k");
    check_floats(v, int64_t(n) * L.row_len(), "split_attention", "v");
    if (n == 0) return;
    SplitAttentionArgs a{};
    a.L = L;
    a.q = dev_f(q);
    a.k = dev_f(k);
    a.v = dev_f(v);
    a.out = dev_f(out);
    a.n = n;
    a.pos0 = pos0;
    a.n_heads = s.n_heads;
    a.scale = s.scale;
    a.fitted = L.fitted(pos0);
    const bool direct = (path == SplitAttentionPath::kAuto || path == SplitAttentionPath::kSpectral) &&
                        n <= kSplitDirectMaxTokens;
    if (!direct) {
      graph_->barrier();
      void* rows = split_rows_.get(split_rows_bytes(L, n, pos0), stream_);
      a.workspace = prefill_ws_.get(split_rows_workspace_bytes(L, n, pos0, s.n_heads, sm_count_), stream_);
      split_attention_rows(a, rows, sm_count_, stream_);
      return;
    }
    Op op;
    op.kind = OpKind::kSplitAttention;
    op.uses_pos = 1;
    op.pos0 = pos0;
    pack_layer(L, op);
    op.p[kSplitP0] = a.q;
    op.p[kSplitP0 + 1] = a.k;
    op.p[kSplitP0 + 2] = a.v;
    op.p[kSplitP0 + 3] = a.out;
    const size_t bytes = split_direct_workspace_bytes(L, n, s.n_heads, sm_count_);
    if (!split_decode_ws_.fits(bytes)) graph_->barrier();
    op.p[kSplitP0 + 4] = split_decode_ws_.get(bytes, stream_);
    op.i[kSplitI0] = n;
    op.i[kSplitI0 + 1] = s.n_heads;
    op.i[kSplitI0 + 2] = a.fitted;
    op.f[0] = s.scale;
    submit(op, n == 1 && split_graph_);
  }

  void fourier_project(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                       DeviceBuffer& coef) override {
    fourier_sums(values, rows, n_comp, m0, period, n_freq, coef, true);
  }
  void fourier_accumulate(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                          DeviceBuffer& coef) override {
    fourier_sums(values, rows, n_comp, m0, period, n_freq, coef, false);
  }

 private:
  // Every scratch block a deferred or captured op may point into: a reallocation drops the graph.
  size_t generation() const {
    return decode_ws_.generation() + split_decode_ws_.generation() + split_append_ws_.generation();
  }

  void fourier_sums(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                    DeviceBuffer& coef, bool overwrite) {
    if (!native_split_) {
      return overwrite ? Backend::fourier_project(values, rows, n_comp, m0, period, n_freq, coef)
                       : Backend::fourier_accumulate(values, rows, n_comp, m0, period, n_freq, coef);
    }
    use_device();
    const char* name = overwrite ? "fourier_project" : "fourier_accumulate";
    require(rows >= 0 && n_comp >= 0 && m0 >= 0, ErrorCode::kInvalidArgument,
            std::string(name) + ": negative rows, dims or position");
    require(period >= 1 && n_freq >= 1, ErrorCode::kInvalidArgument,
            std::string(name) + ": the period and the frequency count must be positive");
    check_floats(values, int64_t(rows) * n_comp, name, "values");
    check_floats(coef, int64_t(n_comp) * 2 * n_freq, name, "coef");
    graph_->barrier();
    cuda::fourier_accumulate(dev_f(values), rows, n_comp, n_comp, m0, period, n_freq, basis_table(period),
                             overwrite, dev_f(coef), stream_);
  }

  // The layer as device pointers, with every size checked against its buffers.
  SplitLayerDev split_layer(const SplitKvLayer& c, const AttentionShape& s, const char* op) {
    const std::string what = op;
    require(s.n_kv_heads > 0 && s.n_heads > 0 && s.n_heads % s.n_kv_heads == 0, ErrorCode::kInvalidArgument,
            what + ": n_heads must be a positive multiple of n_kv_heads");
    require(s.head_dim > 0 && s.head_dim <= 256, ErrorCode::kUnsupported,
            what + ": the CUDA split cache supports head_dim up to 256, not " + std::to_string(s.head_dim));
    require(c.sink >= 0 && c.window >= 0 && c.middle >= 0, ErrorCode::kInvalidArgument,
            what + ": negative sink, window or middle");
    SplitLayerDev L = split_layer_sizes(c, s);
    const size_t tb = kv_type_bytes(c.type), row_bytes = size_t(L.row_len()) * tb;
    auto need = [&](const DeviceBuffer* b, size_t bytes, const char* which) {
      if (bytes == 0) return;
      require(b != nullptr && b->size() >= bytes, ErrorCode::kInvalidArgument,
              what + ": split cache buffer '" + which + "' is missing or smaller than the layout");
    };
    if (L.T > 0) {
      require(L.N >= 1 && L.fit >= 1 && L.fit <= L.T, ErrorCode::kInvalidArgument,
              what + ": Fourier frequencies and the fit length must be positive (fit <= middle)");
      L.table = basis_table(L.T);
      // The column-block FFTs win at N >= 256 only so far (H100, 8B shape at 32K: N 512 56.9 against 53.6
      // t/s row by row, N 128 83.3-84.5 against 93.6-94.4; docs/CUDA.md).
      L.fft = middle_fft_ && !(chirp_ && L.N <= kChirpMaxN) && L.N >= kMiddleFftMinN &&
              (L.N & (L.N - 1)) == 0 && L.T % L.N == 0;
      if (chirp_ && L.N <= kChirpMaxN) {
        const ChirpDev& t = chirp_tables(L.T, L.N);
        L.chirp = true;
        L.chirp_n = static_cast<const float2*>(t.n->data());
        L.chirp_m = static_cast<const float2*>(t.m->data());
        L.chirp_seg = static_cast<const float2*>(t.seg->data());
        L.chirp_twiddle = static_cast<const float2*>(t.tw->data());
      }
    }
    const SplitKvPart* parts[2] = {&c.k, &c.v};
    SplitPartDev* devs[2] = {&L.k, &L.v};
    for (int q = 0; q < 2; ++q) {
      const SplitKvPart& P = *parts[q];
      SplitPartDev& D = *devs[q];
      need(P.sink, size_t(L.S) * row_bytes, "sink");
      need(P.window, size_t(L.W) * row_bytes, "window");
      D.sink = P.sink ? dev(*P.sink) : nullptr;
      D.window = P.window ? dev(*P.window) : nullptr;
      if (L.T <= 0) continue;
      const SplitKvDims& dm = P.dims;
      require(int(dm.keep_offset.size()) == L.kvh + 1 && int(dm.comp_offset.size()) == L.kvh + 1 &&
                  dm.n_keep() + dm.n_comp() == L.kvh * L.d,
              ErrorCode::kInvalidArgument,
              what + ": the split cache's dim lists do not cover every head's dims");
      D.nk = dm.n_keep();
      D.nc = dm.n_comp();
      need(P.dims_table, sizeof(int32_t) * (2 * size_t(L.kvh + 1) + D.nk + D.nc), "dims_table");
      need(P.kept, size_t(L.T) * D.nk * tb, "kept");
      need(P.pending, size_t(L.fit) * D.nc * sizeof(float), "pending");
      need(P.coef, size_t(D.nc) * 2 * L.N * sizeof(float), "coef");
      need(P.norm, size_t(D.nc) * kSplitNormStride * sizeof(float), "norm");
      D.dims = static_cast<const int*>(dev(*P.dims_table));
      D.kept = P.kept ? dev(*P.kept) : nullptr;
      D.pending = P.pending ? dev_f(*P.pending) : nullptr;
      D.coef = P.coef ? dev_f(*P.coef) : nullptr;
      D.norm = P.norm ? dev_f(*P.norm) : nullptr;
    }
    return L;
  }

  // The chirp-z tables of split_chirp.h for (T, N), built once.
  struct ChirpDev {
    std::unique_ptr<CudaBuffer> n, m, seg, tw;
  };
  const ChirpDev& chirp_tables(int period, int n_freq) {
    auto it = chirp_tables_.find({period, n_freq});
    if (it != chirp_tables_.end()) return it->second;
    const ChirpTables host = build_chirp_tables(period, n_freq);
    auto put = [&](const std::vector<float2>& v, const char* what) {
      auto buf = std::make_unique<CudaBuffer>(v.size() * sizeof(float2), what);
      upload_table(buf->data(), v.data(), v.size() * sizeof(float2), std::string("uploading ") + what);
      return buf;
    };
    ChirpDev d;
    d.n = put(host.chirp_n, "chirp-z table (frequencies)");
    d.m = put(host.chirp_m, "chirp-z table (positions)");
    d.seg = put(host.seg, "chirp-z span spectra");
    d.tw = put(host.twiddle, "FFT twiddles");
    return chirp_tables_.emplace(std::make_pair(period, n_freq), std::move(d)).first->second;
  }

  // A constant table's upload, complete before this returns. cudaMemcpy from pageable memory returns once the
  // data is staged, "but the DMA to final destination may not have completed" (CUDA runtime API docs), and
  // it runs on the legacy stream, which stream_ (non-blocking) does not wait for: a kernel right after could
  // read the table half-written (a suspect for one unexplained SplitKv.ProjectAndAccumulate failure).
  static void upload_table(void* dst, const void* src, size_t bytes, const std::string& what) {
    FKV_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
    FKV_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy), what);
  }

  // (cos, sin)(2π k / T) for k < T, FourierBasis's own floats, built once per T.
  const float2* basis_table(int period) {
    auto it = basis_tables_.find(period);
    if (it != basis_tables_.end()) return static_cast<const float2*>(it->second->data());
    const FourierBasis b(period, 1);
    std::vector<float2> host(static_cast<size_t>(period));
    for (int k = 0; k < period; ++k) host[size_t(k)] = make_float2(b.cos_table()[k], b.sin_table()[k]);
    auto buf = std::make_unique<CudaBuffer>(host.size() * sizeof(float2), "Fourier basis table");
    upload_table(buf->data(), host.data(), host.size() * sizeof(float2), "uploading the Fourier basis table");
    const float2* ptr = static_cast<const float2*>(buf->data());
    basis_tables_.emplace(period, std::move(buf));
    return ptr;
  }

  // Makes this backend's GPU current for the calling thread: a process may hold backends on several GPUs.
  void use_device() {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current == device_) return;
    FKV_CUDA_CHECK(cudaSetDevice(device_), "selecting CUDA device " + std::to_string(device_));
  }

  void submit(const Op& op, bool one_token) {
    use_device();
    if (one_token) return graph_->submit(op, generation());
    graph_->barrier();
    run(op, false);
  }

  void check_weight(const Weight& w, const char* op) {
    require(w.buf != nullptr, ErrorCode::kInvalidArgument, std::string(op) + ": weight has no buffer");
    require(
        weight_type_supported(w.type), ErrorCode::kUnsupported,
        std::string(op) + ": the CUDA backend cannot read weights of type " + type_name(uint32_t(w.type)));
    require(size_t(w.rows) * row_bytes(w.type, w.cols) <= w.buf->size(), ErrorCode::kInvalidArgument,
            std::string(op) + ": weight buffer is smaller than its rows");
  }

  // Executes one op on the stream. capturing: inside a graph capture (pos0 from the device scalar,
  // attention split for the whole cache).
  void run(const Op& op, bool capturing) {
    const int* pos_dev = capturing ? graph_->pos0_device() : nullptr;
    switch (op.kind) {
      case OpKind::kCopy:
        FKV_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(op.p[1]), op.p[0], size_t(op.i[0]),
                                       cudaMemcpyDeviceToDevice, stream_),
                       "copying between device buffers");
        return;
      case OpKind::kEmbed:
        return cuda::embed(GgmlType(op.i[0]), WeightLayout(op.i[4]), op.p[0], op.i[1], op.i[2],
                           static_cast<const int32_t*>(op.p[1]),
                           int(op.i[3]), mut(op.p[2]), stream_);
      case OpKind::kRmsNorm:
        return cuda::rms_norm(static_cast<const float*>(op.p[0]), static_cast<const float*>(op.p[1]),
                              int(op.i[0]), int(op.i[1]), op.f[0], mut(op.p[2]), stream_);
      case OpKind::kMatvec:
        return cuda::matvec(GgmlType(op.i[0]), WeightLayout(op.i[3]), op.p[0], op.i[1], op.i[2],
                            static_cast<const float*>(op.p[1]),
                            mut(op.p[2]), sm_count_, stream_);
      case OpKind::kRope:
        return cuda::rope(mut(op.p[0]), int(op.i[0]), int(op.i[1]), int(op.i[2]), op.pos0, pos_dev,
                          static_cast<const float*>(op.p[1]), stream_);
      case OpKind::kSwiglu:
        return cuda::swiglu(static_cast<const float*>(op.p[0]), static_cast<const float*>(op.p[1]), op.i[0],
                            mut(op.p[2]), stream_);
      case OpKind::kAdd:
        return cuda::add(static_cast<const float*>(op.p[0]), static_cast<const float*>(op.p[1]), op.i[0],
                         mut(op.p[2]), stream_);
      case OpKind::kKvStore:
        return cuda::kv_store(static_cast<const float*>(op.p[0]), int(op.i[0]), op.i[1], op.pos0, pos_dev,
                              op.i[2] != 0, const_cast<void*>(op.p[1]), stream_);
      case OpKind::kAttention: {
        AttentionArgs a{};
        a.q = static_cast<const float*>(op.p[0]);
        a.k = op.p[1];
        a.v = op.p[2];
        a.out = mut(op.p[3]);
        a.workspace = mut(op.p[4]);
        a.n = int(op.i[0]);
        a.s.n_heads = int(op.i[1]);
        a.s.n_kv_heads = int(op.i[2]);
        a.s.head_dim = int(op.i[3]);
        a.s.scale = op.f[0];
        a.f16 = op.i[4] != 0;
        a.pos0 = op.pos0;
        a.pos0_dev = pos_dev;
        a.merge_counters = static_cast<unsigned*>(merge_counters_->data());
        a.n_merge_counters = kMergeCounters;
        // Eager: split for the positions in use; captured: for the whole cache, since pos0 moves.
        a.max_len = capturing ? int(op.i[5]) : op.pos0 + a.n;
        return cuda::attention(a, sm_count_, stream_);
      }
      case OpKind::kSplitAppend:
        return split_append(unpack_layer(op), static_cast<const float*>(op.p[kSplitP0]),
                            static_cast<const float*>(op.p[kSplitP0 + 1]), int(op.i[kSplitI0]), op.pos0,
                            pos_dev, const_cast<void*>(op.p[kSplitP0 + 2]), stream_);
      case OpKind::kSplitAttention: {
        SplitAttentionArgs a{};
        a.L = unpack_layer(op);
        a.q = static_cast<const float*>(op.p[kSplitP0]);
        a.k = static_cast<const float*>(op.p[kSplitP0 + 1]);
        a.v = static_cast<const float*>(op.p[kSplitP0 + 2]);
        a.out = mut(op.p[kSplitP0 + 3]);
        a.workspace = const_cast<void*>(op.p[kSplitP0 + 4]);
        a.n = int(op.i[kSplitI0]);
        a.n_heads = int(op.i[kSplitI0 + 1]);
        a.fitted = op.i[kSplitI0 + 2] != 0;
        a.scale = op.f[0];
        a.pos0 = op.pos0;
        a.pos0_dev = pos_dev;
        return split_attention_direct(a, sm_count_, stream_);
      }
    }
    throw Error(ErrorCode::kInternal, "CUDA backend: unknown op kind");
  }

  // Inside a decode-graph capture: runs ops[0] fused with the ops after it when they form one of the decode
  // step's patterns, and returns how many ops it ran (0: no pattern, nothing launched). Patterns:
  //  - up to 3 matvecs of one x, type, layout and row length (q/k/v, gate/up): one launch; gate/up followed
  //    by the SwiGLU of their outputs: one launch with the SwiGLU folded in;
  //  - add then the RMSNorm of its sum (the residual and the next norm): one launch;
  //  - rope(q), rope(k), kv_store(k), kv_store(v) of one token: one launch;
  //  - the q/k/v matvecs followed by that rope/store of their outputs: one launch (matvec_qkv_rope), where
  //    the matvec kernel computes a RoPE pair in one warp.
  size_t run_fused(const Op* ops, size_t count) {
    const int* pos_dev = graph_->pos0_device();
    const Op& a = ops[0];
    if (a.kind == OpKind::kMatvec) {
      size_t m = 1;
      while (m < count && m < 3 && ops[m].kind == OpKind::kMatvec && ops[m].p[1] == a.p[1] &&
             ops[m].i[0] == a.i[0] && ops[m].i[2] == a.i[2] && ops[m].i[3] == a.i[3] && ops[m].p[2] != a.p[1])
        ++m;
      if (m < 2) return 0;
      if (m == 3 && count >= 7 && rope_fold_ && fold_qkv_rope(ops)) {
        ++rope_folds_;
        return 7;
      }
      // gate, up, then swiglu(gate_out, up_out) into gate_out: the SwiGLU folds into the pair's launch.
      if (m == 2 && count >= 3 && gated_) {
        const Op& sw = ops[2];
        if (sw.kind == OpKind::kSwiglu && sw.p[0] == a.p[2] && sw.p[1] == ops[1].p[2] && sw.p[2] == a.p[2] &&
            sw.i[0] == a.i[1] && ops[1].i[1] == a.i[1] &&
            matvec_gated(GgmlType(a.i[0]), WeightLayout(a.i[3]), a.p[0], ops[1].p[0], a.i[1], a.i[2],
                         static_cast<const float*>(a.p[1]), mut(a.p[2]), mut(ops[1].p[2]), sm_count_, stream_))
          return 3;
      }
      const void* w[3];
      float* out[3];
      int64_t rows[3];
      for (size_t k = 0; k < m; ++k) {
        w[k] = ops[k].p[0];
        out[k] = mut(ops[k].p[2]);
        rows[k] = ops[k].i[1];
      }
      return matvec_fused(GgmlType(a.i[0]), WeightLayout(a.i[3]), int(m), w, rows, a.i[2],
                          static_cast<const float*>(a.p[1]), out, sm_count_, stream_)
                 ? m
                 : 0;
    }
    if (a.kind == OpKind::kAdd && count >= 2) {
      const Op& norm = ops[1];
      if (norm.kind != OpKind::kRmsNorm || norm.p[0] != a.p[2] || norm.i[0] != 1 || norm.i[1] != a.i[0]) return 0;
      return add_rms_norm(static_cast<const float*>(a.p[0]), static_cast<const float*>(a.p[1]), mut(a.p[2]),
                          static_cast<const float*>(norm.p[1]), int(norm.i[1]), norm.f[0], mut(norm.p[2]), stream_)
                 ? 2
                 : 0;
    }
    if (a.kind == OpKind::kRope && count >= 4) {
      const Op &rk = ops[1], &sk = ops[2], &sv = ops[3];
      if (!rope_store_pattern(ops)) return 0;
      rope_store(mut(a.p[0]), int(a.i[1]), mut(rk.p[0]), static_cast<const float*>(sv.p[0]), int(rk.i[1]),
                 int(a.i[2]), a.pos0, pos_dev, static_cast<const float*>(a.p[1]), sk.i[2] != 0,
                 const_cast<void*>(sk.p[1]), const_cast<void*>(sv.p[1]), stream_);
      return 4;
    }
    return 0;
  }

  // rope(q), rope(k), kv_store(k), kv_store(v) of one token, as rope_store runs them.
  static bool rope_store_pattern(const Op* ops) {
    const Op &a = ops[0], &rk = ops[1], &sk = ops[2], &sv = ops[3];
    return a.kind == OpKind::kRope && rk.kind == OpKind::kRope && sk.kind == OpKind::kKvStore &&
           sv.kind == OpKind::kKvStore && a.i[0] == 1 && rk.i[0] == 1 && sk.i[0] == 1 && sv.i[0] == 1 &&
           a.p[1] == rk.p[1] && a.i[2] == rk.i[2] && a.i[2] % 2 == 0 && sk.p[0] == rk.p[0] &&
           sk.i[1] == rk.i[1] * rk.i[2] && sv.i[1] == sk.i[1] && sv.i[2] == sk.i[2] && sv.p[0] != a.p[0] &&
           sv.p[0] != rk.p[0] &&
           a.p[0] != rk.p[0];  // one kernel rotating one buffer as q and as k would race
  }

  // ops[0..2]: the q, k, v matvecs of one x (run_fused checked); ops[3..6]: the rope/store of exactly their
  // outputs. Launches them as one kernel and returns true, or launches nothing and returns false.
  bool fold_qkv_rope(const Op* ops) {
    const Op &rq = ops[3], &rk = ops[4], &sk = ops[5], &sv = ops[6];
    if (!rope_store_pattern(ops + 3)) return false;
    const int64_t hd = rq.i[2];
    const bool match = rq.p[0] == ops[0].p[2] && rk.p[0] == ops[1].p[2] && sv.p[0] == ops[2].p[2] &&
                       rq.i[1] * hd == ops[0].i[1] && rk.i[1] * hd == ops[1].i[1] && sk.i[1] == ops[1].i[1] &&
                       ops[2].i[1] == ops[1].i[1];
    if (!match) return false;
    const void* w[3] = {ops[0].p[0], ops[1].p[0], ops[2].p[0]};
    const int64_t rows[3] = {ops[0].i[1], ops[1].i[1], ops[2].i[1]};
    float* out[3] = {mut(ops[0].p[2]), mut(ops[1].p[2]), mut(ops[2].p[2])};
    QkvRope r{};
    r.freqs = static_cast<const float*>(rq.p[1]);
    r.head_dim = int(hd);
    r.pos0 = rq.pos0;
    r.pos0_dev = graph_->pos0_device();
    r.f16 = sk.i[2] != 0;
    r.k_cache = const_cast<void*>(sk.p[1]);
    r.v_cache = const_cast<void*>(sv.p[1]);
    return matvec_qkv_rope(GgmlType(ops[0].i[0]), WeightLayout(ops[0].i[3]), w, rows, ops[0].i[2],
                           static_cast<const float*>(ops[0].p[1]), out, r, sm_count_, stream_);
  }

  static float* mut(const void* p) { return static_cast<float*>(const_cast<void*>(p)); }
  static int32_t layout_of(const Weight& w) { return static_cast<const CudaBuffer&>(*w.buf).layout(); }

  void gemm(const Weight& w, const float* x, int n, float* out) {
    const bool fp32 = w.type == GgmlType::F32 || w.type == GgmlType::BF16;
    const cudaDataType_t ab_type = fp32 ? CUDA_R_32F : CUDA_R_16F;
    const size_t elem = fp32 ? 4 : 2;
    const void* b = x;
    if (!fp32) {
      void* xh = x_half_.get(size_t(n) * w.cols * 2, stream_);
      to_half(x, int64_t(n) * w.cols, xh, stream_);
      b = xh;
    }
    const bool in_place = w.type == GgmlType::F32 || w.type == GgmlType::F16;
    const int64_t chunk_rows =
        in_place ? w.rows
                 : std::max<int64_t>(1, std::min<int64_t>(w.rows, int64_t(kGemmScratchElems) / w.cols));
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, w.rows - r0);
      const void* a;
      if (in_place) {
        a = dev(*w.buf);
      } else {
        void* scratch = w_scratch_.get(size_t(chunk_rows) * w.cols * elem, stream_);
        dequantize_rows(w.type, WeightLayout(layout_of(w)), dev(*w.buf), r0, rows, w.cols, scratch, !fp32, stream_);
        a = scratch;
      }
      // Column-major view: C[rows x n] (ldc = w.rows) = A^T[rows x cols] * B[cols x n]; A is W's rows.
      FKV_CUDA_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), n, int(w.cols), &alpha, a,
                                  ab_type, int(w.cols), b, ab_type, int(w.cols), &beta, out + r0, CUDA_R_32F,
                                  int(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "multiplying " + std::to_string(n) + " tokens by a " + std::to_string(w.rows) + "x" +
                         std::to_string(w.cols) + " " + type_name(uint32_t(w.type)) + " weight");
    }
  }

  // Device table of rope_frequency() for these parameters, built once: the CPU's definition, so the backends
  // agree on the angles bit for bit.
  const float* rope_table(const RopeParams& p) {
    for (auto& [key, buf] : rope_tables_)
      if (key.head_dim == p.head_dim && key.theta == p.theta && key.llama3 == p.llama3 &&
          key.factor == p.factor && key.low_freq_factor == p.low_freq_factor &&
          key.high_freq_factor == p.high_freq_factor && key.original_context == p.original_context)
        return static_cast<const float*>(buf->data());
    std::vector<float> freqs(size_t(p.head_dim / 2));
    for (int k = 0; k < p.head_dim / 2; ++k) freqs[size_t(k)] = rope_frequency(p, k);
    auto buf = std::make_unique<CudaBuffer>(freqs.size() * sizeof(float), "RoPE frequencies");
    upload_table(buf->data(), freqs.data(), freqs.size() * sizeof(float), "uploading RoPE frequencies");
    rope_tables_.emplace_back(p, std::move(buf));
    return static_cast<const float*>(rope_tables_.back().second->data());
  }

  // A read-back through the pinned buffer in pieces, each copied on to dst as soon as it lands while the
  // next one is still coming over the bus (0.5 MB of logits: the host copy overlaps the transfer).
  void download_staged(const char* from, char* dst, size_t bytes) {
    const size_t pieces = std::min<size_t>(kDownloadPieces, (bytes + kDownloadPieceMin - 1) / kDownloadPieceMin);
    const size_t piece = (bytes + pieces - 1) / pieces;
    for (size_t i = 0; i < pieces; ++i) {
      const size_t off = i * piece, n = std::min(piece, bytes - off);
      FKV_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(pinned_) + off, from + off, n, cudaMemcpyDeviceToHost,
                                     stream_),
                     "downloading " + std::to_string(bytes) + " bytes");
      FKV_CUDA_CHECK(cudaEventRecord(download_events_[i], stream_), "marking a read-back piece");
    }
    step_timer_.after_copy(stream_);
    for (size_t i = 0; i < pieces; ++i) {
      FKV_CUDA_CHECK(cudaEventSynchronize(download_events_[i]), "waiting for the GPU (download)");
      const size_t off = i * piece;
      std::memcpy(dst + off, static_cast<const char*>(pinned_) + off, std::min(piece, bytes - off));
    }
  }

  // The pinned staging buffer of small downloads, grown on demand; false when it cannot be had (pinned
  // memory is a limited resource): the download then goes straight to the caller's memory.
  bool ensure_pinned(size_t bytes) {
    if (bytes <= pinned_bytes_) return true;
    if (pinned_) (void)cudaFreeHost(pinned_);
    pinned_bytes_ = 0;
    if (cudaMallocHost(&pinned_, bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      pinned_ = nullptr;
      pinned_download_ = false;
      return false;
    }
    pinned_bytes_ = bytes;
    return true;
  }

  int device_;
  std::string device_name_;
  int sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Scratch decode_ws_{"attention split workspace (decode)"};
  Scratch prefill_ws_{"attention split workspace (prefill)"};
  Scratch w_scratch_{"dequantized weight scratch (prefill GEMM)"};
  Scratch x_half_{"f16 activations (prefill GEMM)"};
  Scratch split_decode_ws_{"split attention workspace (decode)"};
  Scratch split_append_ws_{"split KV append staging"};
  Scratch split_rows_{"split attention rows (prefill)"};
  std::map<int, std::unique_ptr<CudaBuffer>> basis_tables_;
  std::map<std::pair<int, int>, ChirpDev> chirp_tables_;
  // FKV_CUDA_CHIRP=1: decode evaluates fitted middle spans by chirp-z FFT. Off by default: on an H100 it
  // gave wrong results and illegal addresses for N >= 128 (SplitKv.AttentionHeadDim128Fp32,
  // AttentionEveryDimCompressed at 16c1e87) while the per-row path passed the same configurations.
  bool chirp_ = false;
  static constexpr int kMiddleFftMinN = 256;
  // FKV_CUDA_MIDDLE_FFT=0: the fitted middle row by row (per-row spectral sums) instead of by N-point FFTs
  // over column blocks (split_attention_kernels.cuh), for comparisons.
  bool middle_fft_ = true;
  int fused_ops_ = 0;
  bool fuse_ = true;          // FKV_CUDA_FUSE=0: a captured decode graph runs every op on its own
  bool gated_ = true;         // FKV_CUDA_GATED=0: gate/up and their SwiGLU stay two launches in the graph
  bool rope_fold_ = true;     // FKV_CUDA_ROPE_FOLD=0: q/k/v and their rope/store stay two launches
  int rope_folds_ = 0;
  bool split_graph_ = true;   // FKV_CUDA_SPLIT_GRAPH=0: split-cache ops never replay in a graph
  bool native_split_ = true;  // FKV_CUDA_SPLIT=0: the Backend base class's host fallback (for bisecting)
  std::vector<std::pair<RopeParams, std::unique_ptr<CudaBuffer>>> rope_tables_;
  std::unique_ptr<DecodeGraph> graph_;
  std::unique_ptr<CudaBuffer> merge_counters_;
  static constexpr size_t kPinnedDownloadMax = size_t(16) << 20;
  static constexpr size_t kDownloadPieces = 4, kDownloadPieceMin = size_t(64) << 10;
  cudaEvent_t download_events_[kDownloadPieces] = {};
  bool pinned_download_ = true;  // FKV_CUDA_PINNED_DOWNLOAD=0: every download goes to the caller's memory
  void* pinned_ = nullptr;
  size_t pinned_bytes_ = 0;
  StepTimer step_timer_{env_flag("FKV_CUDA_STEP_STATS", false)};
};

}  // namespace
}  // namespace cuda

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

int cuda_graph_replays(const Backend& backend) {
  const auto* b = dynamic_cast<const cuda::CudaBackend*>(&backend);
  return b ? b->graph_replays() : 0;
}

int cuda_fused_ops(const Backend& backend) {
  const auto* b = dynamic_cast<const cuda::CudaBackend*>(&backend);
  return b ? b->fused_ops() : 0;
}

int cuda_early_launches(const Backend& backend) {
  const auto* b = dynamic_cast<const cuda::CudaBackend*>(&backend);
  return b ? b->early_launches() : 0;
}

int cuda_rope_folds(const Backend& backend) {
  const auto* b = dynamic_cast<const cuda::CudaBackend*>(&backend);
  return b ? b->rope_folds() : 0;
}

std::unique_ptr<Backend> create_cuda_backend(int device) {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    throw Error(ErrorCode::kBackend,
                std::string("no CUDA device: ") +
                    (st != cudaSuccess ? cudaGetErrorString(st) : "the driver reports none"));
  }
  if (device < 0) {
    const char* env = std::getenv("FKV_CUDA_DEVICE");
    device = env && *env ? std::atoi(env) : 0;
  }
  require(device >= 0 && device < n, ErrorCode::kInvalidArgument,
          "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) + " found)");
  return std::make_unique<cuda::CudaBackend>(device);
}

}  // namespace fkv
