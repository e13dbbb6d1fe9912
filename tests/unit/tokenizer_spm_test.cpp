// SentencePiece-style tokenizer on small hand-made vocabularies; every expectation is worked out by hand
// from llama.cpp's algorithm (best score first, leftmost on ties, byte fallback).
#include <gtest/gtest.h>

#include <cstdio>

#include "tokenizer/vocab.h"
#include "util/error.h"

namespace fkv {
namespace {

// <unk> <s> </s>, the 256 byte tokens, then the given pieces with their scores.
struct SpmBuilder {
  Vocab v;
  SpmBuilder() {
    v.model = VocabModel::kSentencePiece;
    add("<unk>", 0, TokenType::kUnknown);
    add("<s>", 0, TokenType::kControl);
    add("</s>", 0, TokenType::kControl);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      add(name, 0, TokenType::kByte);
    }
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    v.add_bos = true;
  }
  int32_t add(const std::string& text, float score, TokenType type = TokenType::kNormal) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(type);
    return static_cast<int32_t>(v.tokens.size()) - 1;
  }
  int32_t byte(int b) const { return 3 + b; }
};

const std::string kSp = "\xE2\x96\x81";  // ▁

TEST(SpmTokenizer, MergesBestScoreFirstDownToOneToken) {
  SpmBuilder b;
  for (const char* c : {"h", "e", "l", "o"}) b.add(c, -20);
  b.add(kSp, -20);
  b.add(kSp + "h", -10);
  b.add("he", -2);
  b.add("ll", -1);
  b.add("llo", -3);
  b.add(kSp + "he", -4);
  const int32_t hello = b.add(kSp + "hello", -5);
  // "▁hello": ll, he, llo, ▁he, then ▁he + llo = ▁hello ("▁h" loses: its left symbol is gone by then).
  auto tok = make_tokenizer(b.v);
  EXPECT_EQ(tok->encode("hello", false, false), std::vector<int32_t>({hello}));
  EXPECT_EQ(tok->encode("hello", true, false), std::vector<int32_t>({1, hello}));
  EXPECT_EQ(tok->decode({1, hello}), "hello");
  EXPECT_EQ(tok->token_bytes(hello), " hello");
}

TEST(SpmTokenizer, ScoreDecidesBetweenOverlappingPairs) {
  for (bool el_better : {true, false}) {
    SpmBuilder b;
    b.v.add_space_prefix = false;
    const int32_t h = b.add("h", -20), e = b.add("e", -20), l = b.add("l", -20);
    const int32_t he = b.add("he", el_better ? -2.0f : -0.5f);
    const int32_t el = b.add("el", -1);
    auto tok = make_tokenizer(b.v);
    const auto expected = el_better ? std::vector<int32_t>{h, el} : std::vector<int32_t>{he, l};
    EXPECT_EQ(tok->encode("hel", false, false), expected) << "el_better=" << el_better;
    (void)e;
  }
}

TEST(SpmTokenizer, EqualScoresMergeLeftmostFirst) {
  SpmBuilder b;
  b.v.add_space_prefix = false;
  const int32_t a = b.add("a", -20);
  const int32_t aa = b.add("aa", -1);
  auto tok = make_tokenizer(b.v);
  EXPECT_EQ(tok->encode("aaa", false, false), std::vector<int32_t>({aa, a}));
}

TEST(SpmTokenizer, SpacesBecomeMarkersAndPrefixIsAdded) {
  SpmBuilder b;
  const int32_t sp = b.add(kSp, -20);
  const int32_t a = b.add("a", -20);
  const int32_t sa = b.add(kSp + "a", -1);
  auto tok = make_tokenizer(b.v);
  // "a  a" -> "▁a▁▁a": ▁a, ▁, ▁a
  const auto ids = tok->encode("a  a", false, false);
  EXPECT_EQ(ids, std::vector<int32_t>({sa, sp, sa}));
  EXPECT_EQ(tok->decode(ids), "a  a");
  // Without the prefix flag the text starts as written.
  b.v.add_space_prefix = false;
  auto raw = make_tokenizer(b.v);
  EXPECT_EQ(raw->encode("a a", false, false), std::vector<int32_t>({a, sa}));
  EXPECT_EQ(raw->decode({a, sa}), "a a");
  // Tabs and newlines are not spaces: they fall back to bytes.
  EXPECT_EQ(raw->encode("\t", false, false), std::vector<int32_t>({b.byte('\t')}));
}

TEST(SpmTokenizer, UnknownCharactersFallBackToBytes) {
  SpmBuilder b;
  const int32_t sp = b.add(kSp, -20);
  auto tok = make_tokenizer(b.v);
  // "é" = C3 A9 and "😀" = F0 9F 98 80 are not pieces.
  const auto ids = tok->encode("\xC3\xA9\xF0\x9F\x98\x80", false, false);
  EXPECT_EQ(ids, std::vector<int32_t>({sp, b.byte(0xC3), b.byte(0xA9), b.byte(0xF0), b.byte(0x9F),
                                       b.byte(0x98), b.byte(0x80)}));
  EXPECT_EQ(tok->decode(ids), "\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(tok->token_bytes(b.byte(0xC3)), "\xC3");
}

TEST(SpmTokenizer, WithoutByteTokensUnknownCharactersAreUnk) {
  Vocab v;
  v.model = VocabModel::kSentencePiece;
  v.tokens = {"<unk>", kSp, "a"};
  v.types = {TokenType::kUnknown, TokenType::kNormal, TokenType::kNormal};
  v.unk_id = 0;
  auto tok = make_tokenizer(v);
  EXPECT_EQ(tok->encode("a\xC3\xA9"
                        "a",
                        false, false),
            std::vector<int32_t>({1, 2, 0, 2}));
  // Without an unknown token either, the text cannot be represented: an error, not a crash.
  v.types[0] = TokenType::kNormal;
  v.unk_id = -1;
  auto none = make_tokenizer(v);
  try {
    none->encode("\xC3\xA9", false, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(SpmTokenizer, SpecialTokensOnlyWithParseSpecial) {
  SpmBuilder b;
  const int32_t sp = b.add(kSp, -20);
  const int32_t hi = b.add(kSp + "hi", -1);
  b.add("hi", -2);
  b.add("h", -20);
  b.add("i", -20);
  const int32_t user = b.add("<tool>", 0, TokenType::kUserDefined);
  auto tok = make_tokenizer(b.v);
  // After a special token the next text gets the space prefix again (llama.cpp).
  EXPECT_EQ(tok->encode("hi</s>hi", false, true), std::vector<int32_t>({hi, 2, hi}));
  // As plain text, "</s>" is bytes.
  const auto plain = tok->encode("</s>", false, false);
  EXPECT_EQ(plain, std::vector<int32_t>({sp, b.byte('<'), b.byte('/'), b.byte('s'), b.byte('>')}));
  // User-defined tokens are always whole.
  EXPECT_EQ(tok->encode("<tool>", false, false), std::vector<int32_t>({user}));
  // Control tokens render as nothing unless asked.
  EXPECT_EQ(tok->token_bytes(2), "");
  EXPECT_EQ(tok->decode({hi, 2}), "hi");
  EXPECT_EQ(tok->decode({hi, 2}, true), "hi</s>");
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_FALSE(tok->is_end_of_generation(hi));
  EXPECT_EQ(tok->token_text(hi), kSp + "hi");
}

TEST(SpmTokenizer, EmptyTextAndIdChecks) {
  SpmBuilder b;
  auto tok = make_tokenizer(b.v);
  EXPECT_TRUE(tok->encode("", false, true).empty());
  EXPECT_EQ(tok->encode("", true, true), std::vector<int32_t>({1}));
  EXPECT_THROW(tok->token_bytes(-1), Error);
  EXPECT_THROW(tok->token_bytes(tok->vocab_size()), Error);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos_by_default());
}

}  // namespace
}  // namespace fkv

namespace fkv {
namespace {

// Arbitrary bytes never break encoding; with all 256 byte tokens SentencePiece gives them back exactly
// (except "▁" itself, which reads as a space).
TEST(SpmTokenizer, RandomBytesRoundTrip) {
  SpmBuilder b;
  b.add(kSp, -5);
  b.add("a", -3);
  b.add(kSp + "a", -1);
  b.add("\xC3\xA9", -2);
  auto tok = make_tokenizer(b.v);
  uint32_t state = 777;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  const std::string alphabet = "a </s><s> \n\xC3\xA9\xF0\x9F\x98\x80\xFF\x80";
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const size_t n = next() % 40;
    for (size_t i = 0; i < n; ++i)
      text +=
          (next() % 4 == 0) ? static_cast<char>(next() >> 24) : alphabet[(next() >> 16) % alphabet.size()];
    // A literal "▁" in the input is a space to SentencePiece: it cannot come back as "▁".
    if (text.find(kSp) != std::string::npos) continue;
    EXPECT_EQ(tok->decode(tok->encode(text, true, false)), text);
  }
}

}  // namespace
}  // namespace fkv
