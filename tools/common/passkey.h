// Passkey retrieval prompts (needle in a haystack): a 5-digit key stated once at a chosen depth of filler
// text, then asked for at the end. Built in token space so that a prompt is exactly the requested length.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace fkv::tools {

struct PasskeyPrompt {
  std::vector<int32_t> tokens;
  std::string passkey;   // the 5 digits the model should answer
  size_t needle_at = 0;  // token index where the key sentence begins
};

class PasskeyBuilder {
 public:
  // filler: the haystack text; only as much of it as the longest prompt needs is tokenized.
  PasskeyBuilder(const Tokenizer& tokenizer, std::string filler);

  // A prompt of exactly n_tokens tokens with the key sentence after fraction `depth` (0..1) of the filler,
  // moved forward to the next sentence end so that it does not split a sentence. Throws fkv::Error
  // (kInvalidArgument) when n_tokens cannot hold the instructions, key and question, or the filler is short.
  PasskeyPrompt build(int n_tokens, double depth, uint64_t seed);

 private:
  const std::vector<int32_t>& filler_tokens(size_t n);

  const Tokenizer& tok_;
  std::string filler_;
  size_t filler_chars_used_ = 0;
  std::vector<int32_t> filler_ids_;
};

// The first run of digits in text ("" when none): what an answer is scored on.
std::string first_number(const std::string& text);

// The haystack text of a file: the "text" member of a JSON object (PaulGrahamEssays.json), or the whole
// file when it is not JSON. Throws fkv::Error.
std::string read_haystack(const std::string& path);

}  // namespace fkv::tools
