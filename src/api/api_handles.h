// What the C API's opaque handles hold. Only src/api/ sees these definitions.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "fkv.h"
#include "model/llama_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

struct fkv_model {
  std::unique_ptr<fkv::Backend> backend;
  std::unique_ptr<fkv::LlamaModel> weights;   // declared after backend: freed before it
  std::unique_ptr<fkv::Tokenizer> tokenizer;  // null for models without a vocabulary
  fkv::ChatTemplate chat_template;  // with the default system prompt the model's own template adds
  fkv::SessionOptions context_defaults;
  // Contexts of one model share its backend (and the CPU backend's thread pool), which is not safe to
  // drive from two threads at once: every call that runs the model holds this lock. Recursive so that a
  // generation callback may evaluate another context of the same model.
  std::recursive_mutex run_mutex;
  std::atomic<int> n_contexts{0};
};

struct fkv_context {
  fkv_model* model = nullptr;
  std::unique_ptr<fkv::Session> session;
  const std::vector<float>* logits = nullptr;  // the session's last logits; null before any evaluation
  // The state fkv_state_save writes: every token evaluated, and how many each evaluation took, so that
  // a restore repeats the same calls and reaches the same logits.
  std::vector<int32_t> history;
  std::vector<uint32_t> evaluations;
};

struct fkv_sampler {
  std::unique_ptr<fkv::Sampler> sampler;
};

namespace fkv::api {

// Converts the C options (validated) to the engine's; throws kInvalidArgument naming the bad field.
SessionOptions session_options_from(const fkv_context_options& options);

// Evaluates tokens on the context and records them in its history. On a failure after evaluation began
// the context is reset, so that its history and cache never disagree.
void evaluate(fkv_context& context, const int32_t* tokens, size_t n_tokens);

// Fills a caller's byte buffer with text + NUL under the required-size rules of fkv.h.
fkv_status copy_text_out(const std::string& text, char* buffer, size_t capacity, size_t* out_length,
                         const char* function);

}  // namespace fkv::api
