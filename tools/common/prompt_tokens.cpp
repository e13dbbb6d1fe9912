#include "common/prompt_tokens.h"

#include <fstream>
#include <random>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace fkv::tools {

bool has_tokenizer(const GgufFile& file) {
  return file.find("tokenizer.ggml.model") != nullptr;
}

std::vector<int32_t> encode_prompt(const GgufFile& file, const std::string& text) {
  require(has_tokenizer(file), ErrorCode::kInvalidArgument,
          file.path() + " has no tokenizer; use token ids (e.g. --n-tokens) instead of text");
  const auto tok = Tokenizer::from_gguf(file);
  return tok->encode(text, tok->add_bos_by_default(), false);
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  std::vector<int32_t> ids(size_t(std::max(n, 0)));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(bool(in), ErrorCode::kIo, "cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  require(!in.bad(), ErrorCode::kIo, "cannot read " + path);
  return s.str();
}

}  // namespace fkv::tools
