#include "common/memory_estimate.h"

#include <algorithm>

namespace fkv::tools {

size_t activation_bytes_estimate(const LlamaHparams& hp, int max_batch, bool with_all_logits) {
  const size_t b = size_t(max_batch) * sizeof(float);
  const size_t q_dim = size_t(hp.n_heads) * hp.head_dim;
  size_t bytes = size_t(max_batch) * sizeof(int32_t);            // token ids
  bytes += b * hp.dim;                                           // residual
  bytes += b * std::max<size_t>(hp.dim, q_dim);                  // normed
  bytes += b * q_dim * 2;                                        // q, attention output
  bytes += b * size_t(hp.kv_dim()) * 2;                          // k, v
  bytes += b * size_t(hp.ffn_dim) * 2;                           // ffn gate, up
  bytes += sizeof(float) * (size_t(hp.dim) + size_t(hp.vocab));  // last token, logits
  if (with_all_logits) bytes += b * size_t(hp.vocab);
  return bytes;
}

}  // namespace fkv::tools
