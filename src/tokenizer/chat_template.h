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

// Additions to the agreed interface.
//
// BOS: a template's leading BOS text (Llama 3 "<|begin_of_text|>", Llama 2's first "<s>") is not written;
// encode(text, add_bos = true, parse_special = true) adds it, so it is never doubled. Later "<s>" in
// Llama 2 conversations are written (they are not the sequence start).
//
// Some templates write a default system prompt when the conversation has none (SmolLM2: "You are a
// helpful AI assistant named SmolLM, trained by Hugging Face"). ChatTemplate carries it; use
// chat_template_from_gguf + this overload to render exactly what the model's own template renders.
struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::kChatML;
  std::string default_system_prompt;  // written when messages[0] is not a system message; "" = none
};
ChatTemplate chat_template_from_gguf(const GgufFile& file);
// From the template's Jinja text ("" = absent).
ChatTemplate parse_chat_template(const std::string& jinja);
ChatTemplateKind detect_chat_template(const std::string& jinja);
std::string apply_chat_template(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prefix);

}  // namespace fkv
