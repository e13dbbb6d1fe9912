// Utf8StreamDecoder: complete characters pass, split ones are held back, invalid bytes become U+FFFD.
#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fkv {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string decode_all(const std::string& bytes) {
  Utf8StreamDecoder d;
  std::string out = d.push(bytes);
  return out + d.flush();
}

TEST(Utf8StreamDecoder, PassesAsciiAndCompleteCharacters) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("hello "), "hello ");
  EXPECT_EQ(d.push("caf\xC3\xA9 \xE6\x97\xA5"), "caf\xC3\xA9 \xE6\x97\xA5");
  EXPECT_EQ(d.flush(), "");
}

TEST(Utf8StreamDecoder, HoldsBackEmojiSplitAcrossPushes) {
  Utf8StreamDecoder d;  // U+1F600 = F0 9F 98 80
  EXPECT_EQ(d.push("a\xF0"), "a");
  EXPECT_EQ(d.push("\x9F"), "");
  EXPECT_EQ(d.push("\x98"), "");
  EXPECT_EQ(d.push("\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(d.flush(), "");
}

TEST(Utf8StreamDecoder, EmptyPushIsHarmless) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push(""), "");
  EXPECT_EQ(d.push("\xC3"), "");
  EXPECT_EQ(d.push(""), "");
  EXPECT_EQ(d.push("\xA9"), "\xC3\xA9");
}

TEST(Utf8StreamDecoder, InvalidBytesBecomeReplacementCharacter) {
  EXPECT_EQ(decode_all("a\xFF"
                       "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(decode_all("\x80"), kFffd);                          // lone continuation byte
  EXPECT_EQ(decode_all("\xC0\xAF"), kFffd + kFffd);              // overlong lead, then a stray continuation
  EXPECT_EQ(decode_all("\xE0\x80\x80"), kFffd + kFffd + kFffd);  // overlong 3-byte form
  EXPECT_EQ(decode_all("\xED\xA0\x80"), kFffd + kFffd + kFffd);  // UTF-16 surrogate
  EXPECT_EQ(decode_all("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
}

TEST(Utf8StreamDecoder, TruncatedSequenceFollowedByAsciiIsOneReplacement) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("\xE2\x82"), "");    // could still become U+20AC
  EXPECT_EQ(d.push("A"), kFffd + "A");  // it cannot any more: one U+FFFD for the two bytes
  EXPECT_EQ(d.push("\xE2\x82\xAC"), "\xE2\x82\xAC");
}

TEST(Utf8StreamDecoder, FlushReplacesATruncatedTail) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("ok\xF0\x9F\x98"), "ok");
  EXPECT_EQ(d.flush(), kFffd);
  EXPECT_EQ(d.flush(), "");
  EXPECT_EQ(d.push("x"), "x");  // usable after a flush
}

TEST(Utf8, DecodeAndAppendRoundTrip) {
  for (uint32_t cp : {0x24u, 0xA2u, 0x20ACu, 0x10348u, 0x10FFFFu}) {
    std::string s;
    utf8_append(s, cp);
    uint32_t back = 0;
    EXPECT_EQ(utf8_decode(s, 0, back), s.size());
    EXPECT_EQ(back, cp);
  }
  uint32_t cp = 0;
  EXPECT_EQ(utf8_decode("\xE2\x82", 0, cp), 0u);
}

}  // namespace
}  // namespace fkv
