#include "fourier/fourier_profile.h"
#include "kv/kv_options.h"
#include "kv/split_kv_cache.h"
#include "model/llama_hparams.h"
#include "util/error.h"

namespace fkv {

SplitAttentionPath parse_split_path(const std::string& name) {
  if (name == "reference") return SplitAttentionPath::kReference;
  if (name == "fused") return SplitAttentionPath::kFused;
  if (name == "spectral") return SplitAttentionPath::kSpectral;
  if (name == "auto" || name.empty()) return SplitAttentionPath::kAuto;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown split attention path '" + name + "' (expected reference, fused, spectral or auto)");
}

// A profile file given in the options wins ("heuristic" asks for the heuristic); else the one stored in the
// model file (fkv-calibrate --gguf-out); else the heuristic.
FourierProfile resolve_fourier_profile(const LlamaHparams& hp, const KvOptions& o) {
  if (o.fourier_profile == "heuristic" || (o.fourier_profile.empty() && hp.fourier_profile_json.empty()))
    return heuristic_fourier_profile(hp.n_layers, hp.n_kv_heads, hp.head_dim, o.fourier_ratio);
  FourierProfile p =
      o.fourier_profile.empty()
          ? parse_fourier_profile(hp.fourier_profile_json,
                                  std::string("in the model's metadata (") + kFourierProfileKey + ")")
          : load_fourier_profile(o.fourier_profile);
  validate_fourier_profile(p, hp.n_layers, hp.n_kv_heads, hp.head_dim);
  if (o.fourier_ratio >= 0) select_compressed_dims(p, o.fourier_ratio);
  return p;
}

std::unique_ptr<KvCache> make_kv_cache(Backend& backend, const LlamaHparams& hp, const KvOptions& o,
                                       int capacity) {
  if (o.policy == "full")
    return make_full_kv_cache(backend, hp.n_layers, hp.attention_shape(), capacity, o.type);
  if (o.policy == "window" || o.policy == "fourier") {
    SplitKvConfig c;
    c.policy = o.policy;
    c.n_layers = hp.n_layers;
    c.shape = hp.attention_shape();
    c.capacity = capacity;
    c.type = o.type;
    c.sink = o.sink;
    c.window = o.window;
    c.n_freq = o.fourier_n;
    c.fit_tokens = o.fourier_fit_tokens;
    c.path = parse_split_path(o.fourier_path);
    require(o.fourier_norm == "range" || o.fourier_norm == "lsq", ErrorCode::kInvalidArgument,
            "unknown Fourier normalisation '" + o.fourier_norm + "' (expected range or lsq)");
    c.least_squares_norm = o.fourier_norm == "lsq";
    if (o.policy == "fourier") {
      const FourierProfile p = resolve_fourier_profile(hp, o);
      for (const auto& layer : p.layers) {
        c.k_dims.push_back(split_dims(layer.k, hp.head_dim));
        c.v_dims.push_back(split_dims(layer.v, hp.head_dim));
      }
    }
    return make_split_kv_cache(backend, c);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown KV policy '" + o.policy + "' (expected full, window or fourier)");
}

}  // namespace fkv
