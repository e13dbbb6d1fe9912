// Chat templates rendered as the models' own Jinja templates render them.
#include <gtest/gtest.h>

#include "tokenizer/chat_template.h"

namespace fkv {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "Bye"},
};

TEST(ChatTemplate, Detection) {
  EXPECT_EQ(detect_chat_template(std::string("{{'<|im_start|>' + message['role']}}")),
            ChatTemplateKind::kChatML);
  EXPECT_EQ(detect_chat_template(std::string("{{'<|start_header_id|>' + message['role']}}")),
            ChatTemplateKind::kLlama3);
  EXPECT_EQ(detect_chat_template(std::string("{{ bos_token + '[INST] ' + content }}")),
            ChatTemplateKind::kLlama2);
  EXPECT_EQ(detect_chat_template(std::string()), ChatTemplateKind::kChatML);
  EXPECT_STREQ(chat_template_name(ChatTemplateKind::kLlama3), "llama3");
}

TEST(ChatTemplate, ChatMl) {
  EXPECT_EQ(
      apply_chat_template(ChatTemplateKind::kChatML, kConversation, true),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ChatMlDefaultSystemPromptOnlyWithoutSystemMessage) {
  const ChatTemplate t = parse_chat_template(
      "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nBe kind<|im_end|>\n' "
      "}}");
  EXPECT_EQ(t.default_system_prompt, "Be kind");
  EXPECT_EQ(apply_chat_template(t, {{"user", "Hi"}}, false),
            "<|im_start|>system\nBe kind<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(apply_chat_template(t, {{"system", "S"}, {"user", "Hi"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(apply_chat_template(t, {}, false), "");
  // A template that writes the system turn from a message has no default.
  EXPECT_EQ(parse_chat_template("{{'<|im_start|>system\n' + message['content'] + '<|im_end|>'}}")
                .default_system_prompt,
            "");
}

TEST(ChatTemplate, Llama3WithoutLeadingBos) {
  EXPECT_EQ(apply_chat_template(ChatTemplateKind::kLlama3, {{"system", " Be brief. "}, {"user", "Hi"}}, true),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Llama2FoldsSystemIntoFirstTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplateKind::kLlama2, kConversation, true),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(apply_chat_template(ChatTemplateKind::kLlama2, {{"user", " Hi "}}, true), "[INST] Hi [/INST]");
}

}  // namespace
}  // namespace fkv
