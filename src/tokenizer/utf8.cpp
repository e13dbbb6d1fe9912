#include "tokenizer/utf8.h"

#include "tokenizer/tokenizer.h"

namespace fkv {

size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0xC2) return 1;  // ASCII, stray continuation bytes, overlong leads C0/C1
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 1;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      out += kUtf8Replacement;
      return;
    }
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp <= 0x10FFFF) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += kUtf8Replacement;
  }
}

namespace {

// How many bytes of a sequence starting at text[pos] are valid so far (the "maximal subpart"), and
// whether they form a complete character. The second byte's range excludes overlongs, surrogates and
// values above U+10FFFF, so a sequence is rejected as soon as it cannot become valid.
struct Prefix {
  size_t valid;  // bytes that can start a well-formed sequence (>= 1 when the lead is valid)
  size_t need;   // bytes the lead announces; complete when valid == need
};

Prefix valid_prefix(std::string_view text, size_t pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) return {1, 1};
  if (lead < 0xC2 || lead > 0xF4) return {0, 1};
  const size_t need = utf8_sequence_length(lead);
  size_t valid = 1;
  while (valid < need && pos + valid < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos + valid]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (valid == 1) {
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    if (b < lo || b > hi) break;
    ++valid;
  }
  return {valid, need};
}

}  // namespace

size_t utf8_decode(std::string_view text, size_t pos, uint32_t& cp) {
  if (pos >= text.size()) return 0;
  const Prefix p = valid_prefix(text, pos);
  if (p.valid == 0 || p.valid != p.need) return 0;
  const auto lead = static_cast<unsigned char>(text[pos]);
  static constexpr unsigned char kLeadMask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  cp = lead & kLeadMask[p.need];
  for (size_t i = 1; i < p.need; ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  return p.need;
}

size_t utf8_sanitize(std::string_view in, std::string& out, bool final) {
  size_t pos = 0;
  while (pos < in.size()) {
    const Prefix p = valid_prefix(in, pos);
    if (p.valid == 0) {  // a byte that can never start a character
      out += kUtf8Replacement;
      pos += 1;
    } else if (p.valid == p.need) {
      out.append(in.substr(pos, p.need));
      pos += p.need;
    } else if (pos + p.valid == in.size() && !final) {
      break;  // truncated at the end: the next bytes may complete it
    } else {  // broken by a bad byte (or the end of the stream): one U+FFFD for the valid subpart
      out += kUtf8Replacement;
      pos += p.valid;
    }
  }
  return pos;
}

std::string Utf8StreamDecoder::push(const std::string& bytes) {
  pending_ += bytes;
  std::string out;
  const size_t used = utf8_sanitize(pending_, out, /*final=*/false);
  pending_.erase(0, used);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out;
  utf8_sanitize(pending_, out, /*final=*/true);
  pending_.clear();
  return out;
}

}  // namespace fkv
