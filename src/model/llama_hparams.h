// LLaMA hyper-parameters read from a GGUF file's `llama.*` metadata (and the tensor shapes).
#pragma once
#include <string>

#include "backend/backend.h"

namespace fkv {

class GgufFile;

// GGUF metadata key of a Fourier profile embedded in a model file (../shared/FOURIER.md: fkv.fourier.*).
inline constexpr const char* kFourierProfileKey = "fkv.fourier.profile";

struct LlamaHparams {
  std::string architecture;  // general.architecture ("llama")
  std::string name;          // general.name, when present
  int n_layers = 0;
  int dim = 0;  // embedding length
  int n_heads = 0;
  int n_kv_heads = 0;  // GQA: n_heads is a multiple of n_kv_heads
  int head_dim = 0;
  int ffn_dim = 0;
  int vocab = 0;
  int context_length = 0;  // what the model was trained for
  float rms_eps = 1e-5f;
  RopeParams rope;
  bool tied_output = false;  // output.weight absent: the token embedding is the classifier
  // A Fourier profile stored in the model file by `fkv-calibrate --gguf-out` (metadata kFourierProfileKey,
  // the profile's JSON); empty when the file has none. Parsed and validated when a fourier cache is made.
  std::string fourier_profile_json;

  AttentionShape attention_shape() const;
  int kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the hyper-parameters. Throws fkv::Error(kBadFile / kUnsupported) naming the key.
LlamaHparams read_llama_hparams(const GgufFile& file);

}  // namespace fkv
