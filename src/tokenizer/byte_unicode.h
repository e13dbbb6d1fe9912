// The GPT-2 byte <-> unicode table of byte-level BPE: every byte is written as one printable code point
// so that vocabularies and merges are plain text (space is "Ġ" U+0120, newline "Ċ" U+010A).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace fkv {

// The code point that stands for byte b.
uint32_t byte_to_codepoint(uint8_t b);
// The UTF-8 text of that code point (1 or 2 bytes).
const std::string& byte_to_unicode_text(uint8_t b);
// The byte a code point stands for, or -1 when it is not in the table.
int codepoint_to_byte(uint32_t cp);
// Maps a byte-level token's text back to raw bytes; code points outside the table are kept as UTF-8.
std::string byte_level_text_to_bytes(std::string_view text);

}  // namespace fkv
