// The default model's tokenizer (SmolLM2, byte-level BPE, pre "smollm") against ids from the Hugging Face
// tokenizer (tests/fixtures/tokenizer_smollm2.json, made by tools/fixtures/make_tokenizer_fixture.py).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf_reader.h"
#include "test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace fkv {
namespace {

class SmolLm2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::default_model_path();
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tools/fetch-default-model.sh";
    file_ = GgufFile::open(path).release();
    tok_ = Tokenizer::from_gguf(*file_).release();
    std::ifstream in(test::fixture("tokenizer_smollm2.json"));
    ASSERT_TRUE(in) << "missing fixture tokenizer_smollm2.json";
    fixture_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete file_;
    delete fixture_;
  }
  static GgufFile* file_;
  static Tokenizer* tok_;
  static nlohmann::json* fixture_;
};
GgufFile* SmolLm2Tokenizer::file_ = nullptr;
Tokenizer* SmolLm2Tokenizer::tok_ = nullptr;
nlohmann::json* SmolLm2Tokenizer::fixture_ = nullptr;

TEST_F(SmolLm2Tokenizer, Vocabulary) {
  ASSERT_NE(tok_, nullptr);
  EXPECT_EQ(tok_->vocab_size(), 49152);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_FALSE(tok_->add_bos_by_default());
  EXPECT_TRUE(tok_->is_end_of_generation(2));  // <|im_end|>
  EXPECT_TRUE(tok_->is_end_of_generation(0));  // <|endoftext|>
  EXPECT_FALSE(tok_->is_end_of_generation(1));
  EXPECT_EQ(tok_->token_text(1), "<|im_start|>");
  EXPECT_EQ(tok_->encode("Hi", true, false), tok_->encode("Hi", false, false));  // add_bos_token is false
}

TEST_F(SmolLm2Tokenizer, MatchesHuggingFaceIds) {
  ASSERT_NE(fixture_, nullptr);
  const auto& cases = (*fixture_)["cases"];
  ASSERT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = c["ids"];
    EXPECT_EQ(tok_->encode(text, false, true), ids) << "text: " << nlohmann::json(text).dump();
    EXPECT_EQ(tok_->decode(ids, true), text) << "text: " << nlohmann::json(text).dump();
  }
}

TEST_F(SmolLm2Tokenizer, SpecialTokensParseOnlyOnRequest) {
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  const auto special = tok_->encode(text, false, true);
  ASSERT_FALSE(special.empty());
  EXPECT_EQ(special.front(), 1);
  EXPECT_EQ(special.back(), 2);
  const auto plain = tok_->encode(text, false, false);
  EXPECT_GT(plain.size(), special.size());
  for (int32_t id : plain) EXPECT_FALSE(tok_->is_control(id)) << id;
  EXPECT_EQ(tok_->decode(plain), text);
  EXPECT_EQ(tok_->decode(special), "user\nHi");  // control tokens render as nothing
}

TEST_F(SmolLm2Tokenizer, StreamingDecoderYieldsWholeCharacters) {
  const std::string text =
      "emoji: \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD and \xE6\x97\xA5\xE6\x9C\xAC";
  const auto ids = tok_->encode(text, false, false);
  Utf8StreamDecoder stream;
  std::string out;
  bool held_back = false;
  for (int32_t id : ids) {
    const std::string bytes = tok_->token_bytes(id);
    const std::string piece = stream.push(bytes);
    if (piece.size() != bytes.size()) held_back = true;
    // Every piece is valid UTF-8 on its own.
    std::string clean;
    EXPECT_EQ(utf8_sanitize(piece, clean, true), piece.size());
    EXPECT_EQ(clean, piece);
    out += piece;
  }
  out += stream.flush();
  EXPECT_EQ(out, text);
  EXPECT_TRUE(held_back) << "expected some emoji to be split across tokens";
}

TEST_F(SmolLm2Tokenizer, ChatTemplateMatchesHuggingFace) {
  const ChatTemplate tmpl = chat_template_from_gguf(*file_);
  EXPECT_EQ(tmpl.kind, ChatTemplateKind::kChatML);
  EXPECT_EQ(detect_chat_template(*file_), ChatTemplateKind::kChatML);
  EXPECT_EQ(tmpl.default_system_prompt,
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  const auto& chats = (*fixture_)["chat"];
  ASSERT_FALSE(chats.empty());
  for (const auto& c : chats) {
    std::vector<ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    const std::string rendered = apply_chat_template(tmpl, messages, c["add_generation_prompt"]);
    EXPECT_EQ(rendered, c["rendered"].get<std::string>()) << c["name"];
    EXPECT_EQ(tok_->encode(rendered, false, true), c["ids"].get<std::vector<int32_t>>()) << c["name"];
  }
}

TEST_F(SmolLm2Tokenizer, FiftyThousandTokensWellUnderASecond) {
  std::ifstream in(test::shared_dir() + "/data/wikitext-2-raw-test.txt", std::ios::binary);
  ASSERT_TRUE(in) << "missing ../shared/data/wikitext-2-raw-test.txt";
  std::string text(200 * 1024, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok_->encode(text, false, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(ids.size(), 40000u);
  EXPECT_LT(seconds, 0.5) << ids.size() << " tokens took " << seconds << " s";
  EXPECT_EQ(tok_->decode(ids), text);
  std::printf("[ perf ] %zu bytes -> %zu tokens in %.1f ms\n", text.size(), ids.size(), seconds * 1e3);
}

}  // namespace
}  // namespace fkv
