// What SentencePiece-style and byte-level BPE tokenizers share: the vocabulary and its id lookup,
// special-token matching, BOS, end-of-generation ids, and rendering by token type. Subclasses only
// encode special-free text and render ordinary tokens.
#pragma once
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/special_token_matcher.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace fkv {

class VocabTokenizer : public Tokenizer {
 public:
  // Validates what every model needs (sizes, ids in range). Not copyable: lookups point into vocab_.
  explicit VocabTokenizer(Vocab vocab);
  VocabTokenizer(const VocabTokenizer&) = delete;
  VocabTokenizer& operator=(const VocabTokenizer&) = delete;

  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special) const override;
  std::string token_bytes(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  int32_t eos_id() const override { return vocab_.eos_id; }
  bool is_end_of_generation(int32_t id) const override { return eog_.count(id) != 0; }
  bool add_bos_by_default() const override { return vocab_.add_bos; }
  std::string token_text(int32_t id) const override;
  bool is_control(int32_t id) const override;

  const Vocab& vocab() const { return vocab_; }
  TokenType type(int32_t id) const;
  int32_t find_token(std::string_view text) const;  // -1 when absent

 protected:
  // Encodes text that holds no special token. first: the fragment starts the text or follows a special
  // token (SentencePiece prepends its space marker there).
  virtual void encode_fragment(std::string_view text, bool first, std::vector<int32_t>& out) const = 0;
  // Bytes of a token that is not control or unused.
  virtual std::string render(int32_t id, TokenType type) const = 0;
  void check_id(int32_t id) const;

 private:
  Vocab vocab_;
  std::unordered_map<std::string_view, int32_t> ids_;
  SpecialTokenMatcher always_;   // user-defined tokens: matched whatever parse_special says
  SpecialTokenMatcher special_;  // user-defined, control and unknown tokens
  std::unordered_set<int32_t> eog_;
};

}  // namespace fkv
