#include "model/llama_hparams.h"

#include <cmath>

#include "gguf/gguf_reader.h"
#include "model/quant.h"
#include "util/error.h"

namespace fkv {

AttentionShape LlamaHparams::attention_shape() const {
  AttentionShape s;
  s.n_heads = n_heads;
  s.n_kv_heads = n_kv_heads;
  s.head_dim = head_dim;
  s.scale = 1.0f / std::sqrt(float(head_dim));
  return s;
}

namespace {

int64_t required_int(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  require(v.has_value(), ErrorCode::kBadFile, f.path() + ": missing metadata key " + key);
  return *v;
}

int checked_positive(int64_t v, const std::string& key, int64_t max = 1 << 24) {
  require(
      v > 0 && v <= max, ErrorCode::kBadFile,
      "metadata " + key + " = " + std::to_string(v) + " is out of range (1.." + std::to_string(max) + ")");
  return int(v);
}

}  // namespace

LlamaHparams read_llama_hparams(const GgufFile& f) {
  LlamaHparams hp;
  hp.architecture = f.get_string("general.architecture").value_or("");
  require(hp.architecture == "llama", ErrorCode::kUnsupported,
          f.path() + ": architecture '" + hp.architecture + "' is not supported (fkv runs 'llama' models)");
  hp.name = f.get_string("general.name").value_or("");
  hp.fourier_profile_json = f.get_string(kFourierProfileKey).value_or("");
  const std::string a = "llama.";
  hp.n_layers = checked_positive(required_int(f, a + "block_count"), a + "block_count", 4096);
  hp.dim = checked_positive(required_int(f, a + "embedding_length"), a + "embedding_length");
  hp.n_heads =
      checked_positive(required_int(f, a + "attention.head_count"), a + "attention.head_count", 4096);
  hp.n_kv_heads = checked_positive(f.get_int(a + "attention.head_count_kv").value_or(hp.n_heads),
                                   a + "attention.head_count_kv", 4096);
  require(hp.n_heads % hp.n_kv_heads == 0, ErrorCode::kBadFile,
          "head_count " + std::to_string(hp.n_heads) + " is not a multiple of head_count_kv " +
              std::to_string(hp.n_kv_heads));
  hp.head_dim = checked_positive(f.get_int(a + "attention.key_length").value_or(hp.dim / hp.n_heads),
                                 a + "attention.key_length", 1024);
  require(hp.head_dim % 2 == 0, ErrorCode::kBadFile, "head_dim must be even for RoPE");
  hp.ffn_dim = checked_positive(required_int(f, a + "feed_forward_length"), a + "feed_forward_length");
  hp.context_length = checked_positive(f.get_int(a + "context_length").value_or(2048), a + "context_length");
  hp.rms_eps = float(f.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  require(hp.rms_eps > 0 && hp.rms_eps < 1, ErrorCode::kBadFile, "layer_norm_rms_epsilon out of range");

  hp.rope.head_dim = hp.head_dim;
  hp.rope.theta = float(f.get_float(a + "rope.freq_base").value_or(10000.0));
  require(hp.rope.theta > 1, ErrorCode::kBadFile, "rope.freq_base out of range");
  const int rope_dims = int(f.get_int(a + "rope.dimension_count").value_or(hp.head_dim));
  require(
      rope_dims == hp.head_dim, ErrorCode::kUnsupported,
      "partial RoPE (rope.dimension_count " + std::to_string(rope_dims) + " < head_dim) is not supported");
  const std::string scaling = f.get_string(a + "rope.scaling.type").value_or("none");
  if (scaling == "llama3") {
    hp.rope.llama3 = true;
    hp.rope.factor = float(f.get_float(a + "rope.scaling.factor").value_or(8.0));
    hp.rope.low_freq_factor = float(f.get_float(a + "rope.scaling.low_freq_factor").value_or(1.0));
    hp.rope.high_freq_factor = float(f.get_float(a + "rope.scaling.high_freq_factor").value_or(4.0));
    hp.rope.original_context = int(f.get_int(a + "rope.scaling.original_context_length").value_or(8192));
    require(hp.rope.factor >= 1 && hp.rope.high_freq_factor > hp.rope.low_freq_factor &&
                hp.rope.original_context > 0,
            ErrorCode::kBadFile, "llama3 rope scaling parameters out of range");
  } else {
    require(scaling == "none", ErrorCode::kUnsupported, "rope scaling '" + scaling + "' is not supported");
  }

  if (const GgufTensorInfo* factors = f.find_tensor("rope_freqs.weight")) {
    require(factors->dims.size() == 1 && factors->dims[0] == hp.head_dim / 2, ErrorCode::kBadFile,
            "rope_freqs.weight must hold head_dim/2 = " + std::to_string(hp.head_dim / 2) + " values");
    hp.rope.freq_factors.resize(size_t(hp.head_dim / 2));
    dequantize_row(factors->type, factors->data, hp.rope.freq_factors.data(), hp.head_dim / 2);
    for (float v : hp.rope.freq_factors)
      require(std::isfinite(v) && v > 0, ErrorCode::kBadFile, "rope_freqs.weight holds a non-positive value");
  }

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  require(embd != nullptr, ErrorCode::kBadFile, f.path() + ": missing tensor token_embd.weight");
  require(embd->dims.size() == 2 && embd->dims[0] == hp.dim, ErrorCode::kBadFile,
          "token_embd.weight has the wrong shape for embedding_length " + std::to_string(hp.dim));
  hp.vocab = checked_positive(embd->dims[1], "token_embd.weight rows");
  hp.tied_output = f.find_tensor("output.weight") == nullptr;
  return hp;
}

}  // namespace fkv
