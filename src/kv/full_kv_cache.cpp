#include <string>

#include "kv/kv_cache.h"
#include "util/error.h"

namespace fkv {
namespace {

class FullKvCache : public KvCache {
 public:
  FullKvCache(Backend& backend, int n_layers, const AttentionShape& shape, int capacity, KvType type)
      : backend_(backend), shape_(shape), capacity_(capacity), type_(type) {
    const size_t bytes = row_bytes() * size_t(capacity);
    for (int l = 0; l < n_layers; ++l) {
      BufferPtr k = backend.alloc(bytes, "KV cache (K, layer " + std::to_string(l) + ")");
      BufferPtr v = backend.alloc(bytes, "KV cache (V, layer " + std::to_string(l) + ")");
      layers_.push_back(KvLayer{k.get(), v.get(), type, capacity});
      owned_.push_back(std::move(k));
      owned_.push_back(std::move(v));
    }
  }

  std::string policy() const override { return "full"; }
  int capacity() const override { return capacity_; }

  void store(int layer, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0) override {
    backend_.kv_store(k, v, n, pos0, shape_, layers_[size_t(layer)]);
  }
  void attend(int layer, const DeviceBuffer& q, int n, int pos0, DeviceBuffer& out) override {
    backend_.attention(q, n, pos0, shape_, layers_[size_t(layer)], out);
  }
  void clear() override {}  // positions past the session's length are never read

  KvMemoryReport memory(int n_positions) const override {
    KvMemoryReport r;
    r.allocated = 2 * row_bytes() * size_t(capacity_) * layers_.size();
    r.window = 2 * row_bytes() * size_t(n_positions) * layers_.size();
    return r;
  }

 private:
  size_t row_bytes() const { return size_t(shape_.n_kv_heads) * shape_.head_dim * kv_type_bytes(type_); }

  Backend& backend_;
  AttentionShape shape_;
  int capacity_;
  KvType type_;
  std::vector<KvLayer> layers_;
  std::vector<BufferPtr> owned_;
};

}  // namespace

std::unique_ptr<KvCache> make_full_kv_cache(Backend& backend, int n_layers, const AttentionShape& shape,
                                            int capacity, KvType type) {
  require(capacity > 0, ErrorCode::kInvalidArgument, "KV cache capacity must be positive");
  return std::make_unique<FullKvCache>(backend, n_layers, shape, capacity, type);
}

}  // namespace fkv
