#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace fkv {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

// Parses "<0xNN>"; -1 when the text is not a byte token.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9')
      value |= c - '0';
    else if (c >= 'A' && c <= 'F')
      value |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      value |= c - 'a' + 10;
    else
      return -1;
  }
  return value;
}

// A run of the text; merged symbols grow `n` and unlink their right neighbour (n = 0 marks it dead).
struct Symbol {
  int prev;
  int next;
  size_t start;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
  int32_t id;
};

// Best score first; among equal scores the leftmost pair, as llama.cpp and SentencePiece do.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(Vocab v) : VocabTokenizer(std::move(v)) {
  byte_ids_.fill(-1);
  const bool typed = !vocab().types.empty();
  for (int32_t id = 0; id < vocab_size(); ++id) {
    if (typed && type(id) != TokenType::kByte) continue;
    const int b = parse_byte_token(vocab().tokens[static_cast<size_t>(id)]);
    if (b >= 0 && byte_ids_[static_cast<size_t>(b)] < 0) byte_ids_[static_cast<size_t>(b)] = id;
    // A typed byte token must spell a byte: anything else would decode to garbage.
    require(!typed || b >= 0, ErrorCode::kBadFile,
            "tokenizer.ggml.tokens[" + std::to_string(id) + "] has type byte but is not <0xNN>");
  }
}

float SpmTokenizer::score(int32_t id) const {
  return vocab().scores.empty() ? 0.0f : vocab().scores[static_cast<size_t>(id)];
}

int32_t SpmTokenizer::find_piece(std::string_view text) const {
  const int32_t id = find_token(text);
  if (id < 0) return -1;
  const TokenType t = type(id);
  return (t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined) ? id : -1;
}

void SpmTokenizer::emit_bytes(std::string_view text, std::vector<int32_t>& out) const {
  for (char c : text) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else {
      require(
          vocab().unk_id >= 0, ErrorCode::kInvalidArgument,
          "the text has a character this vocabulary cannot represent (no byte token <0x" +
              [&] {
                char hex[3];
                std::snprintf(hex, sizeof hex, "%02X", static_cast<unsigned char>(c));
                return std::string(hex);
              }() +
              ">, no unknown token)");
      out.push_back(vocab().unk_id);
      return;  // one unknown token for the whole character, as SentencePiece does
    }
  }
}

void SpmTokenizer::encode_fragment(std::string_view raw, bool first, std::vector<int32_t>& out) const {
  std::string text;
  text.reserve(raw.size() + 8);
  if (first && vocab().add_space_prefix) text += kSpaceMarker;
  for (char c : raw) {
    if (c == ' ')
      text += kSpaceMarker;
    else
      text += c;
  }

  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    // One symbol per character; a byte of invalid UTF-8 is a symbol of its own (it must not swallow the
    // start of a following "▁").
    uint32_t cp = 0;
    const size_t n = std::max<size_t>(1, utf8_decode(text, pos, cp));
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, pos, n});
    pos += n;
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].n + symbols[right].n;
    const int32_t id = find_piece(std::string_view(text).substr(symbols[left].start, size));
    if (id >= 0) queue.push({left, right, score(id), size, id});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size || left.next != b.right) continue;
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = std::string_view(text).substr(symbols[i].start, symbols[i].n);
    const int32_t id = find_piece(piece);
    if (id >= 0)
      out.push_back(id);
    else
      emit_bytes(piece, out);
  }
}

std::string SpmTokenizer::render(int32_t id, TokenType t) const {
  const std::string& text = vocab().tokens[static_cast<size_t>(id)];
  if (t == TokenType::kByte) {
    const int b = parse_byte_token(text);
    return b >= 0 ? std::string(1, static_cast<char>(b)) : std::string();
  }
  if (t == TokenType::kUnknown) return "\xE2\x96\x85";  // "▅", as llama.cpp shows an unknown token
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, kSpaceMarker.size(), kSpaceMarker) == 0) {
      out += ' ';
      pos += kSpaceMarker.size();
    } else {
      out += text[pos++];
    }
  }
  return out;
}

}  // namespace fkv
