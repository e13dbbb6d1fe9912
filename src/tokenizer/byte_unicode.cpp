#include "tokenizer/byte_unicode.h"

#include <array>

#include "tokenizer/utf8.h"

namespace fkv {
namespace {

// Printable Latin-1 bytes stand for themselves; the others (controls, space, DEL, NBSP, soft hyphen)
// are moved, in byte order, to U+0100 and up.
struct Table {
  std::array<uint32_t, 256> cp{};
  std::array<std::string, 256> text{};
  std::array<int16_t, 512> back{};
  Table() {
    back.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      utf8_append(text[b], cp[b]);
      back[cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) {
  return table().cp[b];
}

const std::string& byte_to_unicode_text(uint8_t b) {
  return table().text[b];
}

int codepoint_to_byte(uint32_t cp) {
  return cp < 512 ? table().back[cp] : -1;
}

std::string byte_level_text_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    const size_t n = utf8_decode(text, pos, cp);
    if (n == 0) {  // not UTF-8: keep the byte as it is
      out += text[pos++];
      continue;
    }
    const int b = codepoint_to_byte(cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(text.substr(pos, n));
    }
    pos += n;
  }
  return out;
}

}  // namespace fkv
