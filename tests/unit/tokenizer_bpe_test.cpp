// Byte-level BPE on a small hand-made vocabulary, the GPT-2 byte alphabet, and the pre-tokenizers.
#include <gtest/gtest.h>

#include "tokenizer/bpe_pretokenizer.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace fkv {
namespace {

// Tokens 0..255: the byte alphabet, in byte order; then the given tokens.
struct BpeBuilder {
  Vocab v;
  BpeBuilder() {
    v.model = VocabModel::kByteLevelBpe;
    v.add_space_prefix = false;
    for (int b = 0; b < 256; ++b) add(byte_to_unicode_text(static_cast<uint8_t>(b)));
  }
  int32_t add(const std::string& text, TokenType type = TokenType::kNormal) {
    v.tokens.push_back(text);
    v.types.push_back(type);
    return static_cast<int32_t>(v.tokens.size()) - 1;
  }
  // Adds the merge and its result token.
  int32_t merge(const std::string& left, const std::string& right) {
    v.merges.push_back(left + " " + right);
    return add(left + right);
  }
};

TEST(ByteUnicode, GptTwoTable) {
  EXPECT_EQ(byte_to_codepoint('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_to_codepoint(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_codepoint('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_codepoint(0x00), 0x100u);
  EXPECT_EQ(byte_to_codepoint(0xAD), 0x143u);  // soft hyphen, the last moved byte
  EXPECT_EQ(byte_to_codepoint(0xFF), 0xFFu);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(codepoint_to_byte(byte_to_codepoint(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(codepoint_to_byte(0x2581), -1);
  EXPECT_EQ(byte_level_text_to_bytes("\xC4\xA0hi\xC4\x8A"), " hi\n");
}

TEST(BpeTokenizer, MergesByRank) {
  BpeBuilder b;
  b.merge("l", "l");
  b.merge("h", "e");
  b.merge("he", "ll");
  const int32_t hello = b.merge("hell", "o");
  b.merge("o", "r");
  b.merge("\xC4\xA0", "w");
  b.merge("\xC4\xA0w", "or");
  b.merge("l", "d");
  const int32_t world = b.merge("\xC4\xA0wor", "ld");
  auto tok = make_tokenizer(b.v);
  const auto ids = tok->encode("hello world", false, false);
  EXPECT_EQ(ids, std::vector<int32_t>({hello, world}));
  EXPECT_EQ(tok->decode(ids), "hello world");
  EXPECT_EQ(tok->token_bytes(world), " world");
  // Unmerged bytes are the byte tokens themselves.
  EXPECT_EQ(tok->encode("\xC3\xA9!", false, false), std::vector<int32_t>({0xC3, 0xA9, '!'}));
  EXPECT_EQ(tok->decode({0xC3, 0xA9}), "\xC3\xA9");
}

TEST(BpeTokenizer, LowerRankWinsOverlaps) {
  for (bool ab_first : {true, false}) {
    BpeBuilder b;
    int32_t ab, bc;
    if (ab_first) {
      ab = b.merge("a", "b");
      bc = b.merge("b", "c");
    } else {
      bc = b.merge("b", "c");
      ab = b.merge("a", "b");
    }
    auto tok = make_tokenizer(b.v);
    const auto expected = ab_first ? std::vector<int32_t>{ab, 'c'} : std::vector<int32_t>{'a', bc};
    EXPECT_EQ(tok->encode("abc", false, false), expected);
    // The word cache must give the same answer the second time.
    EXPECT_EQ(tok->encode("abc abc", false, false).size(), 2 * expected.size() + 1);
  }
}

TEST(BpeTokenizer, SpecialAndUserDefinedTokens) {
  BpeBuilder b;
  const int32_t end = b.add("<|end|>", TokenType::kControl);
  const int32_t tool = b.add("<tool>", TokenType::kUserDefined);
  b.v.eos_id = end;
  auto tok = make_tokenizer(b.v);
  EXPECT_EQ(tok->encode("a<|end|>", false, true), std::vector<int32_t>({'a', end}));
  EXPECT_EQ(tok->encode("a<|end|>", false, false).size(), 8u);  // plain text, byte by byte
  EXPECT_EQ(tok->encode("<tool>x", false, false), std::vector<int32_t>({tool, 'x'}));
  EXPECT_EQ(tok->token_bytes(end), "");
  EXPECT_EQ(tok->token_bytes(tool), "<tool>");
  EXPECT_TRUE(tok->is_end_of_generation(end));
  EXPECT_FALSE(tok->add_bos_by_default());
  EXPECT_EQ(tok->bos_id(), -1);
}

TEST(BpeTokenizer, InvalidUtf8IsEncodedByteByByte) {
  BpeBuilder b;
  auto tok = make_tokenizer(b.v);
  const std::string text = "a\xFF\xC3(b";
  const auto ids = tok->encode(text, false, false);
  EXPECT_EQ(ids, std::vector<int32_t>({'a', 0xFF, 0xC3, '(', 'b'}));
  EXPECT_EQ(tok->decode(ids), text);
}

std::vector<std::string> words(const std::string& pre, const std::string& text) {
  BpePreTokenizer p(pre);
  std::vector<std::string_view> w;
  p.split(text, w);
  return {w.begin(), w.end()};
}

TEST(BpePreTokenizer, Gpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words("gpt2", "Hello world's 123  x\n"), V({"Hello", " world", "'s", " 123", " ", " x", "\n"}));
  EXPECT_EQ(words("", "a   "), V({"a", "   "}));
}

TEST(BpePreTokenizer, SmolLmSplitsDigits) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words("smollm", "ab 123"), V({"ab", " ", "1", "2", "3"}));
}

TEST(BpePreTokenizer, Llama3GroupsDigitsByThreeAndKeepsCase) {
  using V = std::vector<std::string>;
  EXPECT_EQ(words("llama-bpe", "12345 YOU'RE"), V({"123", "45", " YOU", "'RE"}));
}

TEST(BpePreTokenizer, UnknownNameIsUnsupported) {
  try {
    BpePreTokenizer p("no-such-pre");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.pre"), std::string::npos);
  }
}

}  // namespace
}  // namespace fkv

namespace fkv {
namespace {

// Arbitrary bytes (invalid UTF-8, NULs, special-token fragments) never break encoding, and byte-level
// BPE gives them back exactly.
TEST(BpeTokenizer, RandomBytesRoundTrip) {
  BpeBuilder b;
  b.merge("a", "b");
  b.merge("\xC4\xA0", "a");
  b.add("<|x|>", TokenType::kControl);
  auto tok = make_tokenizer(b.v);
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  const std::string alphabet = "ab <|x> \n\t1\xC3\xA9\xF0\x9F\x98\x80\xFF\x80";
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const size_t n = next() % 40;
    for (size_t i = 0; i < n; ++i)
      text +=
          (next() % 4 == 0) ? static_cast<char>(next() >> 24) : alphabet[(next() >> 16) % alphabet.size()];
    EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text);
    EXPECT_EQ(tok->decode(tok->encode(text, false, true), true), text);
  }
}

}  // namespace
}  // namespace fkv
