// The KV cache policy interface the engine drives for prefill and decode. A policy decides what each
// layer keeps (full: every position exactly; window, fourier: see ../shared/FOURIER.md) and how attention
// reads it, through backend ops.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace fkv {

// Bytes the cache holds now, by part. A full cache reports everything under `window`-free `exact`.
struct KvMemoryReport {
  size_t allocated = 0;     // device bytes reserved by the policy
  size_t sink = 0;          // exact rows of the sink tokens
  size_t middle_kept = 0;   // exact rows of the middle's kept dims
  size_t coefficients = 0;  // Fourier coefficients and range-normalisation numbers
  size_t window = 0;        // exact rows of the recent tokens (for `full`: every token)
  // fourier: compressed dims of the first middle tokens, held exact (fp32) until the range normalisation is
  // fitted (docs/FOURIER-IMPL.md); zero once it is.
  size_t middle_pending = 0;
  size_t used() const { return sink + middle_kept + coefficients + window + middle_pending; }
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual std::string policy() const = 0;  // "full", "window", "fourier"
  virtual int capacity() const = 0;        // positions a session may reach
  // Stores layer `layer`'s k, v (fp32 [n, n_kv_heads, head_dim], after RoPE) of positions pos0 .. pos0+n-1.
  // A cache may read k and v until the next store() or flush(): keep them unchanged until then.
  virtual void store(int layer, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0) = 0;
  // Causal attention of q (fp32 [n, n_heads, head_dim], positions pos0 ..) over what the layer holds and
  // the chunk just stored. The chunk may enter the cache only at the next store() or flush(): a caller that
  // records GPU work flushes where the cache's own bookkeeping can run beside other work (Session: beside
  // the feed-forward matvecs, docs/VULKAN.md "Execution").
  virtual void attend(int layer, const DeviceBuffer& q, int n, int pos0, DeviceBuffer& out) = 0;
  // Finishes the last store(), attended or not, so that its k and v may change.
  virtual void flush() {}
  // Forgets every position (a new conversation).
  virtual void clear() = 0;
  virtual KvMemoryReport memory(int n_positions) const = 0;
};

// The exact cache: every position of every layer, in f16 (or f32, a test option).
std::unique_ptr<KvCache> make_full_kv_cache(Backend& backend, int n_layers, const AttentionShape& shape,
                                            int capacity, KvType type);

}  // namespace fkv
