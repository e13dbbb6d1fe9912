// Byte-level BPE pre-tokenization: the regexes that cut text into words before merges, chosen by
// tokenizer.ggml.pre. Each regex of the sequence splits every piece the previous one produced into its
// matches and the text between them (PCRE2, UTF-8 with Unicode properties).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fkv {

class BpePreTokenizer {
 public:
  // name: tokenizer.ggml.pre ("" or "default" = GPT-2). Throws kUnsupported naming the key when unknown.
  explicit BpePreTokenizer(const std::string& name);
  ~BpePreTokenizer();
  BpePreTokenizer(const BpePreTokenizer&) = delete;
  BpePreTokenizer& operator=(const BpePreTokenizer&) = delete;

  // Appends the words of text (views into it, none empty, covering it in order) to words.
  void split(std::string_view text, std::vector<std::string_view>& words) const;
  // Llama 3 style vocabularies take a word that is itself a token whole, without merging.
  bool ignore_merges() const { return ignore_merges_; }

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
  bool ignore_merges_ = false;
};

}  // namespace fkv
