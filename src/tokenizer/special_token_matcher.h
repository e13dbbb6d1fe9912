// Finds special-token text (e.g. "<|im_start|>") in raw text so it can be encoded as one id before the
// rest of the text goes through the model's own algorithm. Leftmost match wins; at one position the
// longest token wins (as the Hugging Face added-token matcher does).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fkv {

struct TextFragment {
  int32_t token = -1;     // >= 0: this fragment is exactly that special token
  std::string_view text;  // the fragment's text (a view into the input)
};

class SpecialTokenMatcher {
 public:
  // Adds a token's text; empty texts are ignored.
  void add(std::string_view text, int32_t id);
  // Splits text into alternating raw fragments and special tokens; no raw fragment is empty.
  std::vector<TextFragment> split(std::string_view text) const;

 private:
  struct Entry {
    std::string_view text;
    int32_t id;
  };
  std::array<std::vector<Entry>, 256> by_first_byte_;  // each sorted longest first
};

}  // namespace fkv
