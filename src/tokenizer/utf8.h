// UTF-8 primitives shared by the tokenizers: character lengths, encoding a code point, and the
// validation that Utf8StreamDecoder (tokenizer.h) uses to hold back or replace bad sequences.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fkv {

// Length of the UTF-8 sequence a lead byte announces (1 for ASCII and for bytes that cannot lead).
size_t utf8_sequence_length(unsigned char lead);

// Appends the UTF-8 encoding of cp (U+FFFD for surrogates and values above U+10FFFF).
void utf8_append(std::string& out, uint32_t cp);

// Decodes the code point at text[pos]; returns its byte length (>= 1), or 0 for an invalid or
// truncated sequence (then cp is unspecified).
size_t utf8_decode(std::string_view text, size_t pos, uint32_t& cp);

// Copies the well-formed UTF-8 of `in` to `out`, replacing each maximal invalid subpart with U+FFFD
// (the Unicode "substitution of maximal subparts" practice). When `final` is false a truncated but so
// far valid sequence at the end is not consumed; the return value is the number of bytes consumed.
size_t utf8_sanitize(std::string_view in, std::string& out, bool final);

inline constexpr const char* kUtf8Replacement = "\xEF\xBF\xBD";

}  // namespace fkv
