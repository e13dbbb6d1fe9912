// Tokenizer and chat template through the C API, with the required-size rules for caller buffers.
#include <cstring>
#include <string>
#include <vector>

#include "api/api_guard.h"
#include "api/api_handles.h"

using namespace fkv;
using namespace fkv::api;

namespace {

const Tokenizer& tokenizer_of(const fkv_model* model) {
  require_ptr(model, "model");
  require(model->tokenizer != nullptr, ErrorCode::kUnsupported, "the model file has no tokenizer");
  return *model->tokenizer;
}

}  // namespace

namespace fkv::api {

fkv_status copy_text_out(const std::string& text, char* buffer, size_t capacity, size_t* out_length,
                         const char* function) {
  require_ptr(out_length, "out_length");
  require(buffer || capacity == 0, ErrorCode::kInvalidArgument, "buffer is NULL but capacity is not 0");
  *out_length = text.size();
  if (capacity < text.size() + 1)
    return fail(FKV_ERR_BUFFER_TOO_SMALL, std::string(function) + ": the text needs " +
                                              std::to_string(text.size() + 1) + " bytes, the buffer has " +
                                              std::to_string(capacity));
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return FKV_OK;
}

}  // namespace fkv::api

extern "C" {

fkv_status fkv_tokenize(const fkv_model* model, const char* text, int add_bos, int parse_special,
                        int32_t* tokens, size_t capacity, size_t* out_n_tokens) {
  return guard(__func__, [&] {
    const Tokenizer& tok = tokenizer_of(model);
    require_ptr(text, "text");
    require_ptr(out_n_tokens, "out_n_tokens");
    require(tokens || capacity == 0, ErrorCode::kInvalidArgument, "tokens is NULL but capacity is not 0");
    const std::vector<int32_t> ids = tok.encode(text, add_bos != 0, parse_special != 0);
    *out_n_tokens = ids.size();
    if (capacity < ids.size())
      return fail(FKV_ERR_BUFFER_TOO_SMALL, "fkv_tokenize: the text needs " + std::to_string(ids.size()) +
                                                " tokens, the buffer has room for " +
                                                std::to_string(capacity));
    std::memcpy(tokens, ids.data(), ids.size() * sizeof(int32_t));
    return FKV_OK;
  });
}

fkv_status fkv_detokenize(const fkv_model* model, const int32_t* tokens, size_t n_tokens, char* text,
                          size_t capacity, size_t* out_length) {
  return guard(__func__, [&] {
    const Tokenizer& tok = tokenizer_of(model);
    require(tokens || n_tokens == 0, ErrorCode::kInvalidArgument, "tokens is NULL but n_tokens is not 0");
    std::string out;
    for (size_t i = 0; i < n_tokens; ++i) {
      require(tokens[i] >= 0 && tokens[i] < tok.vocab_size(), ErrorCode::kInvalidArgument,
              "token id " + std::to_string(tokens[i]) + " is outside the vocabulary (" +
                  std::to_string(tok.vocab_size()) + ")");
      out += tok.token_bytes(tokens[i]);
    }
    return copy_text_out(out, text, capacity, out_length, "fkv_detokenize");
  });
}

fkv_status fkv_token_is_end(const fkv_model* model, int32_t token, int* out) {
  return guard(__func__, [&] {
    const Tokenizer& tok = tokenizer_of(model);
    require_ptr(out, "out");
    require(token >= 0 && token < tok.vocab_size(), ErrorCode::kInvalidArgument,
            "token id " + std::to_string(token) + " is outside the vocabulary");
    *out = tok.is_end_of_generation(token) ? 1 : 0;
    return FKV_OK;
  });
}

fkv_status fkv_apply_chat_template(const fkv_model* model, const fkv_chat_message* messages,
                                   size_t n_messages, int add_assistant_prefix, char* text, size_t capacity,
                                   size_t* out_length) {
  return guard(__func__, [&] {
    require_ptr(model, "model");
    require(messages || n_messages == 0, ErrorCode::kInvalidArgument,
            "messages is NULL but n_messages is not 0");
    std::vector<ChatMessage> conversation;
    conversation.reserve(n_messages);
    for (size_t i = 0; i < n_messages; ++i) {
      const std::string at = "messages[" + std::to_string(i) + "]";
      require_ptr(messages[i].role, (at + ".role").c_str());
      require_ptr(messages[i].content, (at + ".content").c_str());
      const std::string role = messages[i].role;
      require(role == "system" || role == "user" || role == "assistant", ErrorCode::kInvalidArgument,
              at + ".role is '" + role + "' (expected system, user or assistant)");
      conversation.push_back({role, messages[i].content});
    }
    const std::string rendered =
        apply_chat_template(model->chat_template, conversation, add_assistant_prefix != 0);
    return copy_text_out(rendered, text, capacity, out_length, "fkv_apply_chat_template");
  });
}

}  // extern "C"
