#include "kv/kv_options.h"
#include "model/llama_hparams.h"
#include "util/error.h"

namespace fkv {

std::unique_ptr<KvCache> make_kv_cache(Backend& backend, const LlamaHparams& hp, const KvOptions& o,
                                       int capacity) {
  if (o.policy == "full") return make_full_kv_cache(backend, hp.n_layers, hp.attention_shape(), capacity, o.type);
  if (o.policy == "window" || o.policy == "fourier")
    throw Error(ErrorCode::kUnsupported, "KV policy '" + o.policy + "' is not available in this build yet");
  throw Error(ErrorCode::kInvalidArgument,
              "unknown KV policy '" + o.policy + "' (expected full, window or fourier)");
}

}  // namespace fkv
