#include "tokenizer/vocab_tokenizer.h"

#include "util/error.h"

namespace fkv {
namespace {

void check_special_id(int32_t id, size_t n, const char* key) {
  require(id >= -1 && id < static_cast<int64_t>(n), ErrorCode::kBadFile,
          std::string(key) + " = " + std::to_string(id) + " is outside the vocabulary of " +
              std::to_string(n) + " tokens");
}

}  // namespace

VocabTokenizer::VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  const size_t n = vocab_.tokens.size();
  require(n > 0, ErrorCode::kBadFile, "tokenizer.ggml.tokens is empty");
  require(n < (1u << 31), ErrorCode::kBadFile, "tokenizer.ggml.tokens has too many entries");
  require(vocab_.scores.empty() || vocab_.scores.size() == n, ErrorCode::kBadFile,
          "tokenizer.ggml.scores has " + std::to_string(vocab_.scores.size()) + " entries for " +
              std::to_string(n) + " tokens");
  require(vocab_.types.empty() || vocab_.types.size() == n, ErrorCode::kBadFile,
          "tokenizer.ggml.token_type has " + std::to_string(vocab_.types.size()) + " entries for " +
              std::to_string(n) + " tokens");
  for (size_t i = 0; i < vocab_.types.size(); ++i) {
    const auto t = static_cast<int32_t>(vocab_.types[i]);
    require(t >= 0 && t <= 6, ErrorCode::kBadFile,
            "tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                " is not a token type");
  }
  check_special_id(vocab_.bos_id, n, "tokenizer.ggml.bos_token_id");
  check_special_id(vocab_.eos_id, n, "tokenizer.ggml.eos_token_id");
  check_special_id(vocab_.unk_id, n, "tokenizer.ggml.unknown_token_id");
  check_special_id(vocab_.pad_id, n, "tokenizer.ggml.padding_token_id");
  check_special_id(vocab_.eot_id, n, "tokenizer.ggml.eot_token_id");
  check_special_id(vocab_.eom_id, n, "tokenizer.ggml.eom_token_id");
  require(!vocab_.add_bos || vocab_.bos_id >= 0, ErrorCode::kBadFile,
          "tokenizer.ggml.add_bos_token is set but there is no tokenizer.ggml.bos_token_id");

  ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) ids_.emplace(vocab_.tokens[i], static_cast<int32_t>(i));  // first wins

  static const char* const kEndTexts[] = {"<|im_end|>",    "<|eot_id|>", "<|end_of_text|>",
                                          "<|endoftext|>", "</s>",       "<|eom_id|>"};
  for (int32_t id : {vocab_.eos_id, vocab_.eot_id, vocab_.eom_id})
    if (id >= 0) eog_.insert(id);
  for (const char* text : kEndTexts) {
    const int32_t id = find_token(text);
    if (id >= 0) eog_.insert(id);
  }

  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const TokenType t = type(id);
    if (t == TokenType::kUserDefined) always_.add(vocab_.tokens[i], id);
    if (t == TokenType::kUserDefined || t == TokenType::kControl || t == TokenType::kUnknown)
      special_.add(vocab_.tokens[i], id);
  }
}

TokenType VocabTokenizer::type(int32_t id) const {
  return vocab_.types.empty() ? TokenType::kNormal : vocab_.types[static_cast<size_t>(id)];
}

int32_t VocabTokenizer::find_token(std::string_view text) const {
  const auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

void VocabTokenizer::check_id(int32_t id) const {
  require(id >= 0 && id < vocab_size(), ErrorCode::kInvalidArgument,
          "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab_size()));
}

std::vector<int32_t> VocabTokenizer::encode(const std::string& text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && vocab_.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  bool first = true;
  for (const TextFragment& f : (parse_special ? special_ : always_).split(text)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      first = true;
    } else {
      encode_fragment(f.text, first, out);
      first = false;
    }
  }
  return out;
}

std::string VocabTokenizer::token_bytes(int32_t id) const {
  check_id(id);
  const TokenType t = type(id);
  if (t == TokenType::kControl || t == TokenType::kUnused) return {};
  return render(id, t);
}

std::string VocabTokenizer::token_text(int32_t id) const {
  check_id(id);
  return vocab_.tokens[static_cast<size_t>(id)];
}

bool VocabTokenizer::is_control(int32_t id) const {
  check_id(id);
  return type(id) == TokenType::kControl;
}

}  // namespace fkv
