// The chat template named by a GGUF file's tokenizer.chat_template.
#include "gguf/gguf_reader.h"
#include "tokenizer/chat_template.h"

namespace fkv {

ChatTemplate chat_template_from_gguf(const GgufFile& file) {
  return parse_chat_template(file.get_string("tokenizer.chat_template").value_or(""));
}

ChatTemplateKind detect_chat_template(const GgufFile& file) {
  return chat_template_from_gguf(file).kind;
}

}  // namespace fkv
