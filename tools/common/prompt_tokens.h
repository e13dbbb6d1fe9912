// The token ids a tool runs: a prompt encoded with the model's own tokenizer, or, for models without a
// vocabulary (random-weight benchmark files), reproducible pseudo-random ids.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_reader.h"

namespace fkv::tools {

bool has_tokenizer(const GgufFile& file);

// The prompt's ids (BOS added when the vocabulary asks for it). Throws fkv::Error when the file has no
// tokenizer.
std::vector<int32_t> encode_prompt(const GgufFile& file, const std::string& text);

// n ids uniform in [0, vocab), the same for the same seed.
std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed);

// A whole file's text. Throws fkv::Error(kIo) naming the file.
std::string read_text_file(const std::string& path);

}  // namespace fkv::tools
