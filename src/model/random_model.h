// Random-weight LLaMA GGUFs at real shapes (Llama-3 1B/8B) for speed work, and tiny ones for tests:
// decode speed does not depend on weight values. Weights are deterministic in the seed, independent of
// the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/ggml_type.h"

namespace fkv {

struct RandomModelShape {
  std::string name;
  int64_t dim, n_layers, n_heads, n_kv_heads, ffn, vocab, context;
  float rope_theta;
  bool tied_output;    // no output.weight: the output projection is token_embd
  float rope_scaling;  // Llama-3 RoPE scaling factor (0: none); low 1, high 4, original context 8192
};

// "llama3-8b", "llama3-1b", "small" (dim 256, for k-quant tests) or "tiny"; nullptr for others.
const RandomModelShape* find_random_model_shape(const std::string& name);
std::vector<std::string> random_model_shape_names();

struct RandomModelOptions {
  std::string shape = "tiny";
  GgmlType type = GgmlType::F16;  // matrices (token_embd and output included); norms are F32
  uint64_t seed = 1;
  int threads = 0;        // 0: all hardware threads
  bool progress = false;  // a progress line on stderr
  // Also write llama.rope.scaling.type = "llama3" and llama.rope.scaling.factor. Off by default: llama.cpp
  // rejects the type "llama3" and would apply the factor as linear scaling on top of rope_freqs.weight.
  bool llama3_scaling_keys = false;
};

// Writes the model to out_path. Throws kInvalidArgument for an unknown shape, kIo on write failure.
void make_random_model(const RandomModelOptions& opts, const std::string& out_path);

// The type a matrix with rows of row_len values is stored in: `wanted`, or Q8_0 / F16 where the row
// length is not a multiple of wanted's block size (as llama.cpp's quantizer falls back).
GgmlType random_model_tensor_type(GgmlType wanted, int64_t row_len);

// Llama-3 RoPE frequency divisors for the head_dim/2 rotation frequencies (the rope_freqs.weight tensor
// llama.cpp reads): 1 for high frequencies, `factor` for low ones, a smooth blend between.
std::vector<float> llama3_rope_freq_factors(int64_t head_dim, float theta, float factor,
                                            float low_freq_factor, float high_freq_factor,
                                            int64_t original_context);

}  // namespace fkv
