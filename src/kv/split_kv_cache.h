// The `window` and `fourier` policies: one class over the split-cache layout (backend/split_kv_layer.h).
// `window` is the split cache without a middle (StreamingLLM: S sink + W recent tokens, the rest dropped);
// `fourier` adds the middle with kept and Fourier-compressed dims (../shared/FOURIER.md).
//
// Prefill chunks (docs/FOURIER-IMPL.md): store() notes the chunk (the caller's k, v, read later, not copied);
// attend() lets the chunk's queries see the cache as it was before the chunk plus the chunk's own rows exact
// (causally); the next store() or flush() commits the chunk (split_kv_append): tokens leaving the window
// enter the middle only after the whole chunk attended. Decode is the chunk of one token. Positions are
// appended in order; keys keep the RoPE positions they were stored with.
#pragma once
#include <memory>
#include <vector>

#include "kv/kv_cache.h"

namespace fkv {

struct SplitKvConfig {
  std::string policy = "window";  // "window" (no middle) or "fourier"
  int n_layers = 0;
  AttentionShape shape;
  int capacity = 0;  // positions the session may reach; T = capacity - S - W for fourier
  KvType type = KvType::kF16;
  int sink = 4, window = 1020;
  int n_freq = 512;
  int fit_tokens = 256;  // the fit happens when the middle reaches min(T, fit_tokens)
  SplitAttentionPath path = SplitAttentionPath::kAuto;
  bool least_squares_norm = false;          // SplitKvLayer::least_squares_norm
  std::vector<SplitKvDims> k_dims, v_dims;  // fourier: per layer; empty: every dim kept
};

class SplitKvCache : public KvCache {
 public:
  SplitKvCache(Backend& backend, const SplitKvConfig& config);

  std::string policy() const override { return config_.policy; }
  int capacity() const override { return config_.capacity; }
  void store(int layer, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0) override;
  void attend(int layer, const DeviceBuffer& q, int n, int pos0, DeviceBuffer& out) override;
  void flush() override;
  void clear() override;
  KvMemoryReport memory(int n_positions) const override;

  const SplitKvLayer& layer(int l) const { return layers_[size_t(l)]; }
  const SplitKvConfig& config() const { return config_; }
  int middle_capacity() const { return middle_; }

 private:
  void commit();  // appends the staged chunk to its layer
  BufferPtr alloc(size_t bytes, const std::string& what);

  Backend& backend_;
  SplitKvConfig config_;
  int middle_ = 0;  // T
  std::vector<SplitKvLayer> layers_;
  std::vector<int> next_pos_;  // per layer: positions stored so far
  std::vector<BufferPtr> owned_;
  // The chunk between store() and its commit: its layer, size and position, and the caller's k, v.
  const DeviceBuffer* staged_k_ = nullptr;
  const DeviceBuffer* staged_v_ = nullptr;
  int staged_layer_ = -1, staged_n_ = 0, staged_pos0_ = 0;
};

std::unique_ptr<KvCache> make_split_kv_cache(Backend& backend, const SplitKvConfig& config);

}  // namespace fkv
