// Reading tokenizer.ggml.* from GGUF files written here, and the errors a malformed vocabulary gives:
// the right code and a message that names the key at fault.
#include <gtest/gtest.h>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "gguf_test_files.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

namespace fkv {
namespace {

using test::TempFile;

// A minimal SentencePiece vocabulary: <unk> <s> </s> ▁ a ▁a.
GgufWriter spm_writer() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",
                                               "\xE2\x96\x81"
                                               "a"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -3, -2, -1});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

std::unique_ptr<Tokenizer> load(const GgufWriter& w) {
  TempFile tmp("tokenizer");
  w.write(tmp.path());
  auto file = GgufFile::open(tmp.path());
  return Tokenizer::from_gguf(*file);
}

// Runs f, expects fkv::Error with that code and a message containing `needle`.
template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerFromGguf, SentencePieceDefaults) {
  auto tok = load(spm_writer());
  EXPECT_EQ(tok->vocab_size(), 6);
  EXPECT_TRUE(tok->add_bos_by_default());  // llama.cpp's default for "llama" vocabularies
  EXPECT_EQ(tok->encode("a a", true, false), std::vector<int32_t>({1, 5, 5}));
  EXPECT_EQ(tok->decode({1, 5, 5}), "a a");
  EXPECT_TRUE(tok->is_end_of_generation(2));
}

TEST(TokenizerFromGguf, FlagsOverrideDefaults) {
  GgufWriter w = spm_writer();
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_bool("tokenizer.ggml.add_space_prefix", false);
  auto tok = load(w);
  EXPECT_FALSE(tok->add_bos_by_default());
  EXPECT_EQ(tok->encode("a a", true, false), std::vector<int32_t>({4, 5}));
}

TEST(TokenizerFromGguf, NoTokenizerIsUnsupported) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  expect_error([&] { load(w); }, ErrorCode::kUnsupported, "no tokenizer");
  w.set_string("tokenizer.ggml.model", "none");
  expect_error([&] { load(w); }, ErrorCode::kUnsupported, "no tokenizer");
}

TEST(TokenizerFromGguf, UnknownModelIsUnsupported) {
  GgufWriter fresh;
  fresh.set_string("tokenizer.ggml.model", "bert");
  fresh.set_string_array("tokenizer.ggml.tokens", {"a"});
  expect_error([&] { load(fresh); }, ErrorCode::kUnsupported, "tokenizer.ggml.model");
}

TEST(TokenizerFromGguf, MalformedVocabularyNamesTheKey) {
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_i32_array("tokenizer.ggml.tokens", {1, 2});
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.set_f32_array("tokenizer.ggml.scores", {0});
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.scores");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.set_i32_array("tokenizer.ggml.token_type", {1, 9});
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.token_type");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
    w.set_u32("tokenizer.ggml.bos_token_id", 2);
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.bos_token_id");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.merges");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    w.set_string_array("tokenizer.ggml.merges", {"ab"});
    expect_error([&] { load(w); }, ErrorCode::kBadFile, "tokenizer.ggml.merges[0]");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "mystery");
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
    w.set_string_array("tokenizer.ggml.merges", {"a b"});
    expect_error([&] { load(w); }, ErrorCode::kUnsupported, "tokenizer.ggml.pre");
  }
}

TEST(TokenizerFromGguf, ByteLevelBpe) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "smollm");
  w.set_string_array("tokenizer.ggml.tokens", {"<|endoftext|>", "a", "b", "ab", "1", "\xC4\xA0"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 1, 1, 1, 1, 1});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  w.set_u32("tokenizer.ggml.eos_token_id", 0);
  auto tok = load(w);
  EXPECT_EQ(tok->encode("ab 11<|endoftext|>", true, true), std::vector<int32_t>({3, 5, 4, 4, 0}));
  EXPECT_EQ(tok->decode({3, 5, 4, 4, 0}), "ab 11");
  EXPECT_FALSE(tok->add_bos_by_default());
}

TEST(ChatTemplateFromGguf, DetectsAndReadsDefaultSystemPrompt) {
  GgufWriter w = spm_writer();
  w.set_string("tokenizer.chat_template",
               "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
               "'<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
               "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}");
  TempFile tmp("chat");
  w.write(tmp.path());
  auto file = GgufFile::open(tmp.path());
  EXPECT_EQ(detect_chat_template(*file), ChatTemplateKind::kChatML);
  const ChatTemplate t = chat_template_from_gguf(*file);
  EXPECT_EQ(t.default_system_prompt, "You are helpful");
}

}  // namespace
}  // namespace fkv
