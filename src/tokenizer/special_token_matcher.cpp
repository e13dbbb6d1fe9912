#include "tokenizer/special_token_matcher.h"

#include <algorithm>

namespace fkv {

void SpecialTokenMatcher::add(std::string_view text, int32_t id) {
  if (text.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(text[0])];
  const auto pos = std::upper_bound(bucket.begin(), bucket.end(), text.size(),
                                    [](size_t n, const Entry& e) { return n > e.text.size(); });
  bucket.insert(pos, Entry{text, id});
}

std::vector<TextFragment> SpecialTokenMatcher::split(std::string_view text) const {
  std::vector<TextFragment> out;
  size_t raw_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const Entry* hit = nullptr;
    for (const Entry& e : bucket) {
      if (text.compare(pos, e.text.size(), e.text) == 0) {
        hit = &e;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    if (pos > raw_start) out.push_back({-1, text.substr(raw_start, pos - raw_start)});
    out.push_back({hit->id, text.substr(pos, hit->text.size())});
    pos += hit->text.size();
    raw_start = pos;
  }
  if (raw_start < text.size()) out.push_back({-1, text.substr(raw_start)});
  return out;
}

}  // namespace fkv
