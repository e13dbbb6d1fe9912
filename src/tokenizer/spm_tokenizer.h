// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama") with llama.cpp's behaviour: spaces become
// "▁" (U+2581), one "▁" is prepended to text at the start and after each special token
// (add_space_prefix), adjacent pieces are merged best score first, and characters no piece covers fall
// back to byte tokens <0xNN> (or the unknown token).
#pragma once
#include <array>

#include "tokenizer/vocab_tokenizer.h"

namespace fkv {

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab);
  bool decode_strips_leading_space() const override { return vocab().add_space_prefix; }

 protected:
  void encode_fragment(std::string_view text, bool first, std::vector<int32_t>& out) const override;
  std::string render(int32_t id, TokenType type) const override;

 private:
  int32_t find_piece(std::string_view text) const;  // a token merges may form, or -1
  void emit_bytes(std::string_view text, std::vector<int32_t>& out) const;
  float score(int32_t id) const;

  std::array<int32_t, 256> byte_ids_{};  // <0xNN> tokens, -1 when absent
};

}  // namespace fkv
