// llama2.c checkpoint (version 0: a 7-int32 header then float32 arrays) to a LLaMA GGUF with F32 tensors,
// named and shaped as llama.cpp names them. llama2.c's RoPE already rotates adjacent pairs (2i, 2i+1) as
// GGUF's llama convention does, so Q and K are copied without llama.cpp's HF permutation.
#pragma once
#include <cstdint>
#include <string>

#include "gguf/gguf_writer.h"

namespace fkv {

struct Llama2cConfig {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here; see shared_classifier
  int32_t seq_len = 0;
  bool shared_classifier = true;  // header vocab_size > 0: the output projection is the token embedding
};

// Reads and validates in_path (header sanity, file size exactly as the header implies) and returns a
// writer holding the GGUF (tensors reference the loaded checkpoint). Throws kIo or kBadFile.
GgufWriter llama2c_to_gguf(const std::string& in_path, Llama2cConfig* config = nullptr);

// llama2c_to_gguf(in_path).write(out_path).
Llama2cConfig convert_llama2c(const std::string& in_path, const std::string& out_path);

}  // namespace fkv
