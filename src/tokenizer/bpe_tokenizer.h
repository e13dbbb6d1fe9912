// Byte-level BPE (tokenizer.ggml.model = "gpt2"): pre-tokenize into words, write each word's bytes in the
// GPT-2 byte alphabet, then apply merges lowest rank first. Words are merged one at a time over a linked
// list with a priority queue, and results are cached per word, so encoding is linear in the text.
#pragma once
#include <array>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tokenizer/bpe_pretokenizer.h"
#include "tokenizer/vocab_tokenizer.h"

namespace fkv {

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(Vocab vocab);

 protected:
  void encode_fragment(std::string_view text, bool first, std::vector<int32_t>& out) const override;
  std::string render(int32_t id, TokenType type) const override;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  BpePreTokenizer pre_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and merged id
  std::array<int32_t, 256> byte_ids_{};         // the token of each single byte, -1 when absent

  static constexpr size_t kCacheLimit = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace fkv
