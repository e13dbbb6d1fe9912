#include "tokenizer/chat_template.h"

namespace fkv {
namespace {

// Jinja's trim / Python's strip: surrounding whitespace.
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return {};
  return s.substr(begin, s.find_last_not_of(ws) - begin + 1);
}

// ChatML as SmolLM2's template writes it: the default system prompt before the first message when that
// is not a system message (nothing at all for an empty conversation).
std::string render_chatml(const std::vector<ChatMessage>& messages, const std::string& default_system,
                          bool prefix) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && messages[0].role != "system" && !default_system.empty())
      out += "<|im_start|>system\n" + default_system + "<|im_end|>\n";
    out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
  }
  if (prefix) out += "<|im_start|>assistant\n";
  return out;
}

// Meta's Llama 3 template, without the leading <|begin_of_text|> (the BOS).
std::string render_llama3(const std::vector<ChatMessage>& messages, bool prefix) {
  std::string out;
  for (const ChatMessage& m : messages)
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
  if (prefix) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Meta's Llama 2 template: the system prompt folds into the first turn; each user turn opens with BOS
// (not written for the first, see the header); an assistant turn ends with EOS. The reply follows
// "[/INST]", so the assistant prefix adds nothing.
std::string render_llama2(const std::vector<ChatMessage>& messages) {
  size_t first = 0;
  std::string system;
  bool has_system = false;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    has_system = true;
    first = 1;
  }
  std::string out;
  for (size_t i = first; i < messages.size(); ++i) {
    std::string content = messages[i].content;
    if (i == first && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    if (messages[i].role == "user") {
      out += (i == first ? "" : "<s>");
      out += "[INST] " + strip(content) + " [/INST]";
    } else if (messages[i].role == "assistant") {
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string temporaries.
      out += ' ';
      out += strip(content);
      out += " </s>";
    }
  }
  return out;
}

}  // namespace

ChatTemplateKind detect_chat_template(const std::string& jinja) {
  if (jinja.find("<|im_start|>") != std::string::npos) return ChatTemplateKind::kChatML;
  if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplateKind::kLlama3;
  if (jinja.find("[INST]") != std::string::npos) return ChatTemplateKind::kLlama2;
  return ChatTemplateKind::kChatML;
}

ChatTemplate parse_chat_template(const std::string& jinja) {
  ChatTemplate t;
  t.kind = detect_chat_template(jinja);
  if (t.kind == ChatTemplateKind::kChatML) {
    // A literal default system block, as in '<|im_start|>system\nYou are ...<|im_end|>\n'. A template that
    // builds the system turn from a message has quotes, braces or '+' there instead, and gets none.
    const std::string open = "<|im_start|>system\n";
    const size_t begin = jinja.find(open);
    if (begin != std::string::npos) {
      const size_t text = begin + open.size();
      const size_t end = jinja.find("<|im_end|>", text);
      if (end != std::string::npos) {
        const std::string prompt = jinja.substr(text, end - text);
        if (!prompt.empty() && prompt.find_first_of("'\"{}+") == std::string::npos)
          t.default_system_prompt = prompt;
      }
    }
  }
  return t;
}

const char* chat_template_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kChatML:
      return "chatml";
    case ChatTemplateKind::kLlama3:
      return "llama3";
    case ChatTemplateKind::kLlama2:
      return "llama2";
  }
  return "unknown";
}

std::string apply_chat_template(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prefix) {
  switch (tmpl.kind) {
    case ChatTemplateKind::kChatML:
      return render_chatml(messages, tmpl.default_system_prompt, add_assistant_prefix);
    case ChatTemplateKind::kLlama3:
      return render_llama3(messages, add_assistant_prefix);
    case ChatTemplateKind::kLlama2:
      return render_llama2(messages);
  }
  return {};
}

std::string apply_chat_template(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prefix) {
  return apply_chat_template(ChatTemplate{kind, {}}, messages, add_assistant_prefix);
}

}  // namespace fkv
