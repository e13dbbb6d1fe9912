#include "kv/split_kv_cache.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace fkv {

BufferPtr SplitKvCache::alloc(size_t bytes, const std::string& what) {
  if (bytes == 0) return nullptr;
  BufferPtr b = backend_.alloc(bytes, what);
  owned_.push_back(b);
  return b;
}

SplitKvCache::SplitKvCache(Backend& backend, const SplitKvConfig& c) : backend_(backend), config_(c) {
  const bool fourier = c.policy == "fourier";
  require(c.policy == "window" || fourier, ErrorCode::kInvalidArgument,
          "split KV cache: unknown policy " + c.policy);
  require(c.capacity > 0, ErrorCode::kInvalidArgument, "KV cache capacity must be positive");
  require(c.sink >= 0 && c.window >= 0, ErrorCode::kInvalidArgument,
          "--sink and --window must not be negative");
  require(c.sink + c.window > 0, ErrorCode::kInvalidArgument,
          "the " + c.policy + " policy needs --sink + --window > 0");
  // A window longer than the session is never filled: clamp it, so that nothing is allocated for nothing.
  config_.sink = std::min(c.sink, c.capacity);
  config_.window = std::min(c.window, c.capacity - config_.sink);
  const int S = config_.sink, W = config_.window;
  middle_ = fourier ? c.capacity - S - W : 0;
  if (fourier) {
    require(c.n_freq >= 1, ErrorCode::kInvalidArgument, "--fourier-n must be at least 1");
    // fkv: the period T is the middle's room rounded up to a multiple of N (docs/FOURIER-IMPL.md), so that
    // the GPUs can evaluate the spectral sums by N-point FFTs; the extra rows are never reached.
    if (middle_ > 0) {
      const int64_t period = (int64_t(middle_) + c.n_freq - 1) / c.n_freq * c.n_freq;
      require(period < (int64_t(1) << 31), ErrorCode::kInvalidArgument, "--fourier-n too large for the context");
      middle_ = int(period);
    }
    require(c.fit_tokens >= 1, ErrorCode::kInvalidArgument, "the Fourier fit threshold must be at least 1");
    require(c.k_dims.empty() || int(c.k_dims.size()) == c.n_layers, ErrorCode::kInvalidArgument,
            "split KV cache: K dims given for " + std::to_string(c.k_dims.size()) +
                " layers, the model has " + std::to_string(c.n_layers));
    require(c.v_dims.size() == c.k_dims.size(), ErrorCode::kInvalidArgument,
            "split KV cache: K/V dims differ");
  }
  const int n_kv = c.shape.n_kv_heads, d = c.shape.head_dim;
  const size_t row_bytes = size_t(n_kv) * d * kv_type_bytes(c.type);
  SplitKvDims all_kept;
  all_kept.keep_offset.push_back(0);
  all_kept.comp_offset.assign(size_t(n_kv) + 1, 0);
  for (int g = 0; g < n_kv; ++g) {
    for (int j = 0; j < d; ++j) all_kept.keep.push_back(j);
    all_kept.keep_offset.push_back(int(all_kept.keep.size()));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string tag = ", layer " + std::to_string(l) + ")";
    SplitKvLayer L;
    L.type = c.type;
    L.sink = S;
    L.window = W;
    L.middle = middle_;
    L.n_freq = c.n_freq;
    L.fit_tokens = std::max(1, std::min(middle_, c.fit_tokens));
    L.least_squares_norm = c.least_squares_norm;
    for (int part = 0; part < 2; ++part) {
      SplitKvPart& P = part == 0 ? L.k : L.v;
      const char* name = part == 0 ? "K" : "V";
      P.sink = alloc(row_bytes * S, std::string("KV sink (") + name + tag).get();
      P.window = alloc(row_bytes * W, std::string("KV window (") + name + tag).get();
      if (middle_ <= 0) continue;
      P.dims = c.k_dims.empty() ? all_kept : (part == 0 ? c.k_dims : c.v_dims)[size_t(l)];
      require(int(P.dims.keep_offset.size()) == n_kv + 1 && int(P.dims.comp_offset.size()) == n_kv + 1,
              ErrorCode::kInvalidArgument,
              "split KV cache: dim layout of layer " + std::to_string(l) + " is not for " +
                  std::to_string(n_kv) + " KV heads");
      const int nk = P.dims.n_keep(), nc = P.dims.n_comp();
      P.kept = alloc(size_t(middle_) * split_kept_row_elements(nk) * kv_type_bytes(c.type),
                     std::string("KV middle (") + name + tag)
                   .get();
      P.pending =
          alloc(size_t(L.fit_tokens) * nc * sizeof(float), std::string("Fourier pending rows (") + name + tag)
              .get();
      P.coef =
          alloc(size_t(nc) * 2 * c.n_freq * sizeof(float), std::string("Fourier coefficients (") + name + tag)
              .get();
      P.norm = alloc(size_t(nc) * kSplitNormStride * sizeof(float),
                     std::string("Fourier normalisation (") + name + tag)
                   .get();
      const std::vector<int32_t> table = P.dims.device_table(d);
      P.dims_table =
          alloc(table.size() * sizeof(int32_t), std::string("Fourier dim table (") + name + tag).get();
      backend_.upload(*P.dims_table, 0, table.data(), table.size() * sizeof(int32_t));
    }
    layers_.push_back(L);
  }
  next_pos_.assign(size_t(c.n_layers), 0);
}

void SplitKvCache::store(int layer, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0) {
  require(layer >= 0 && layer < config_.n_layers, ErrorCode::kInvalidArgument,
          "KV store: layer out of range");
  if (staged_layer_ >= 0) commit();  // a chunk stored but never attended still becomes part of the cache
  require(pos0 == next_pos_[size_t(layer)], ErrorCode::kUnsupported,
          "the " + config_.policy + " KV cache appends positions in order: layer " + std::to_string(layer) +
              " holds " + std::to_string(next_pos_[size_t(layer)]) + " positions, asked to store at " +
              std::to_string(pos0));
  require(pos0 + n <= config_.capacity, ErrorCode::kContextFull,
          "KV cache holds " + std::to_string(config_.capacity) + " positions; asked to store up to " +
              std::to_string(pos0 + n));
  // No copy: the caller keeps k and v until the next store() or flush() (kv_cache.h). A decode token's
  // copies were a dependent transfer step of their own in every layer.
  staged_k_ = &k;
  staged_v_ = &v;
  staged_layer_ = layer;
  staged_n_ = n;
  staged_pos0_ = pos0;
}

void SplitKvCache::attend(int layer, const DeviceBuffer& q, int n, int pos0, DeviceBuffer& out) {
  require(staged_layer_ == layer && staged_n_ == n && staged_pos0_ == pos0, ErrorCode::kInvalidArgument,
          "KV attend: layer " + std::to_string(layer) + " positions " + std::to_string(pos0) + ".." +
              std::to_string(pos0 + n - 1) + " were not stored just before");
  SplitAttentionPath path = config_.path;
  backend_.split_attention(q, *staged_k_, *staged_v_, n, pos0, config_.shape, layers_[size_t(layer)], path,
                           out);
  // The append is recorded at the next store() or flush() (kv_cache.h): nothing before this layer's next
  // attention reads it, so on a GPU it need not delay the output projection.
}

void SplitKvCache::commit() {
  SplitKvLayer& L = layers_[size_t(staged_layer_)];
  backend_.split_kv_append(*staged_k_, *staged_v_, staged_n_, staged_pos0_, config_.shape, L);
  next_pos_[size_t(staged_layer_)] = staged_pos0_ + staged_n_;
  staged_layer_ = -1;
}

void SplitKvCache::flush() {
  if (staged_layer_ >= 0) commit();
}

void SplitKvCache::clear() {
  std::fill(next_pos_.begin(), next_pos_.end(), 0);
  staged_layer_ = -1;
}

KvMemoryReport SplitKvCache::memory(int t) const {
  KvMemoryReport r;
  for (const BufferPtr& b : owned_) r.allocated += b->size();
  const size_t vb = kv_type_bytes(config_.type);
  const size_t row_bytes = size_t(config_.shape.n_kv_heads) * config_.shape.head_dim * vb;
  for (const SplitKvLayer& L : layers_) {
    r.sink += 2 * row_bytes * size_t(L.sink_len(t));
    r.window += 2 * row_bytes * size_t(std::max(0, t - L.window_begin(t)));
    const size_t m = size_t(L.middle_len(t));
    for (const SplitKvPart* P : {&L.k, &L.v}) {
      const size_t nc = size_t(P->dims.n_comp());
      r.middle_kept += m * size_t(P->dims.n_keep()) * vb;
      if (m == 0 || nc == 0) continue;
      if (L.fitted(t))
        r.coefficients += nc * (2 * size_t(L.n_freq) + kSplitNormStride) * sizeof(float);
      else
        r.middle_pending += m * nc * sizeof(float);
    }
  }
  return r;
}

std::unique_ptr<KvCache> make_split_kv_cache(Backend& backend, const SplitKvConfig& config) {
  return std::make_unique<SplitKvCache>(backend, config);
}

}  // namespace fkv
