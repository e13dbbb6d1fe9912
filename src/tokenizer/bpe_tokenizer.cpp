#include "tokenizer/bpe_tokenizer.h"

#include <queue>

#include "tokenizer/byte_unicode.h"
#include "util/error.h"

namespace fkv {

BpeTokenizer::BpeTokenizer(Vocab v) : VocabTokenizer(std::move(v)), pre_(vocab().pre) {
  for (int b = 0; b < 256; ++b) byte_ids_[b] = find_token(byte_to_unicode_text(static_cast<uint8_t>(b)));

  const auto& merges = vocab().merges;
  merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    // Split at the first space after the first character: a left part may itself be a space-less
    // byte-level string, never empty.
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    require(space != std::string::npos && space + 1 < m.size(), ErrorCode::kBadFile,
            "tokenizer.ggml.merges[" + std::to_string(rank) + "] = \"" + m + "\" is not \"left right\"");
    const std::string_view left(m.data(), space);
    const std::string_view right(m.data() + space + 1, m.size() - space - 1);
    const int32_t l = find_token(left), r = find_token(right);
    joined.assign(left);
    joined.append(right);
    const int32_t result = find_token(joined);
    // A merge whose parts or result are not tokens can never apply; the first listing of a pair wins.
    if (l < 0 || r < 0 || result < 0) continue;
    merges_.emplace(pair_key(l, r), Merge{static_cast<int32_t>(rank), result});
  }
}

void BpeTokenizer::encode_fragment(std::string_view text, bool, std::vector<int32_t>& out) const {
  std::vector<std::string_view> words;
  pre_.split(text, words);
  for (std::string_view word : words) encode_word(word, out);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }

  std::vector<int32_t> ids;
  std::string mapped;
  if (pre_.ignore_merges()) {
    for (char c : word) mapped += byte_to_unicode_text(static_cast<uint8_t>(c));
  }
  const int32_t whole = pre_.ignore_merges() ? find_token(mapped) : -1;
  if (whole >= 0) {
    ids.push_back(whole);
  } else {
    // One symbol per byte; merging links a symbol to its right neighbour and kills the neighbour.
    struct Symbol {
      int32_t id;
      int prev, next;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(word[i])];
      require(id >= 0 || vocab().unk_id >= 0, ErrorCode::kInvalidArgument,
              "byte " + std::to_string(static_cast<unsigned char>(word[i])) +
                  " has no token in this vocabulary and there is no unknown token");
      symbols.push_back({id >= 0 ? id : vocab().unk_id, static_cast<int>(i) - 1, static_cast<int>(i) + 1});
    }
    symbols.back().next = -1;

    struct Candidate {
      int32_t rank;
      int left;
      int32_t left_id, right_id, result;
    };
    // Lowest rank first; equal ranks (the same pair twice) leftmost first.
    auto later = [](const Candidate& a, const Candidate& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
    auto try_add = [&](int left) {
      if (left < 0 || symbols[left].next < 0) return;
      const int right = symbols[left].next;
      const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
      if (it != merges_.end())
        queue.push({it->second.rank, left, symbols[left].id, symbols[right].id, it->second.result});
    };
    for (size_t i = 0; i + 1 < symbols.size(); ++i) try_add(static_cast<int>(i));

    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& left = symbols[c.left];
      // Stale when either side changed since the pair was queued (dead symbols have id -1).
      if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
      Symbol& right = symbols[left.next];
      left.id = c.result;
      right.id = -1;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      try_add(left.prev);
      try_add(c.left);
    }
    for (int i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  }

  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(std::string(word), std::move(ids));
}

std::string BpeTokenizer::render(int32_t id, TokenType t) const {
  const std::string& text = vocab().tokens[static_cast<size_t>(id)];
  // Added tokens (user-defined, unknown) are stored as written, not in the byte alphabet.
  if (t == TokenType::kUserDefined || t == TokenType::kUnknown) return text;
  return byte_level_text_to_bytes(text);
}

}  // namespace fkv
