// Chat templates: ChatML (SmolLM2, Qwen), Llama 3 and Llama 2, recognised from tokenizer.chat_template.
#pragma once
#include <string>
#include <vector>

namespace fkv {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatTemplateKind { kChatML, kLlama3, kLlama2 };

// Picks the template from the file's tokenizer.chat_template (ChatML when absent or unrecognised).
ChatTemplateKind detect_chat_template(const GgufFile& file);
const char* chat_template_name(ChatTemplateKind kind);
// Renders the conversation; with add_assistant_prefix the text ends where the model's reply begins.
// The result contains special-token text (e.g. "<|im_start|>") meant to be encoded with parse_special.
std::string apply_chat_template(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prefix);

}  // namespace fkv
