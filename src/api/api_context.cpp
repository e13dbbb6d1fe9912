// Contexts (sessions) through the C API: create, evaluate, read logits, memory and KV cache facts.
#include <cstring>
#include <mutex>
#include <string>

#include "api/api_guard.h"
#include "api/api_handles.h"

using namespace fkv;
using namespace fkv::api;

namespace fkv::api {

void evaluate(fkv_context& c, const int32_t* tokens, size_t n_tokens) {
  require_ptr(tokens, "tokens");
  require(n_tokens > 0, ErrorCode::kInvalidArgument, "n_tokens must be at least 1");
  Session& s = *c.session;
  // The engine checks these too, but before running anything, so a failure here leaves the context as it
  // was; repeating them keeps that promise independent of the engine's order of checks.
  require(n_tokens <= size_t(s.ctx() - s.n_past()), ErrorCode::kContextFull,
          "context full: " + std::to_string(s.n_past()) + " + " + std::to_string(n_tokens) +
              " tokens exceed the context length " + std::to_string(s.ctx()));
  const int vocab = s.model().hparams().vocab;
  for (size_t i = 0; i < n_tokens; ++i)
    require(tokens[i] >= 0 && tokens[i] < vocab, ErrorCode::kInvalidArgument,
            "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary (" + std::to_string(vocab) + ")");
  std::lock_guard lock(c.model->run_mutex);
  try {
    c.history.reserve(c.history.size() + n_tokens);
    c.evaluations.reserve(c.evaluations.size() + 1);
    c.logits = &s.eval(std::span<const int32_t>(tokens, n_tokens));
    c.history.insert(c.history.end(), tokens, tokens + n_tokens);
    c.evaluations.push_back(uint32_t(n_tokens));
  } catch (...) {
    s.reset();
    c.history.clear();
    c.evaluations.clear();
    c.logits = nullptr;
    throw;
  }
}

}  // namespace fkv::api

extern "C" {

fkv_status fkv_context_create(fkv_model* model, const fkv_context_options* options, fkv_context** out) {
  return guard(__func__, [&] {
    require_ptr(model, "model");
    require_ptr(out, "out_context");
    const SessionOptions so = options ? session_options_from(*options) : model->context_defaults;
    auto c = std::make_unique<fkv_context>();
    c->model = model;
    {
      std::lock_guard lock(model->run_mutex);
      c->session = std::make_unique<Session>(*model->weights, so);
    }
    ++model->n_contexts;
    *out = c.release();
    return FKV_OK;
  });
}

fkv_status fkv_context_free(fkv_context* c) {
  return guard(__func__, [&] {
    if (!c) return FKV_OK;
    fkv_model* model = c->model;
    {
      std::lock_guard lock(model->run_mutex);
      delete c;
    }
    --model->n_contexts;
    return FKV_OK;
  });
}

fkv_status fkv_context_reset(fkv_context* c) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    std::lock_guard lock(c->model->run_mutex);
    c->session->reset();
    c->history.clear();
    c->evaluations.clear();
    c->logits = nullptr;
    return FKV_OK;
  });
}

fkv_status fkv_prefill(fkv_context* c, const int32_t* tokens, size_t n_tokens) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    evaluate(*c, tokens, n_tokens);
    return FKV_OK;
  });
}

fkv_status fkv_decode(fkv_context* c, int32_t token) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    evaluate(*c, &token, 1);
    return FKV_OK;
  });
}

fkv_status fkv_get_logits(const fkv_context* c, const float** out_logits, size_t* out_n_vocab) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(out_logits, "out_logits");
    require(c->logits != nullptr, ErrorCode::kInvalidArgument,
            "the context has no logits yet: evaluate tokens first");
    *out_logits = c->logits->data();
    if (out_n_vocab) *out_n_vocab = c->logits->size();
    return FKV_OK;
  });
}

fkv_status fkv_context_get_position(const fkv_context* c, int32_t* out_n_past, int32_t* out_n_ctx) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require(out_n_past || out_n_ctx, ErrorCode::kInvalidArgument, "out_n_past and out_n_ctx are both NULL");
    if (out_n_past) *out_n_past = c->session->n_past();
    if (out_n_ctx) *out_n_ctx = c->session->ctx();
    return FKV_OK;
  });
}

fkv_status fkv_context_memory(const fkv_context* c, fkv_memory_report* out) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(out, "out_report");
    const KvMemoryReport kv = c->session->kv_memory();
    fkv_memory_report r{};
    r.weight_bytes = c->model->weights->weight_bytes();
    r.kv_allocated_bytes = kv.allocated;
    r.kv_used_bytes = kv.used();
    r.kv_sink_bytes = kv.sink;
    r.kv_middle_kept_bytes = kv.middle_kept;
    r.kv_coefficient_bytes = kv.coefficients;
    r.kv_window_bytes = kv.window;
    r.kv_middle_pending_bytes = kv.middle_pending;
    *out = r;
    return FKV_OK;
  });
}

fkv_status fkv_context_kv_info(const fkv_context* c, fkv_kv_info* out) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(out, "out_info");
    const KvCache& kv = c->session->kv_cache();
    fkv_kv_info info{};
    const std::string policy = kv.policy();
    std::strncpy(info.policy, policy.c_str(), sizeof info.policy - 1);
    info.capacity = kv.capacity();
    info.exact = policy == "full" ? 1 : 0;
    // No policy can re-rotate or drop cached positions yet; a Fourier cache could not do it cheaply at all,
    // since its coefficients mix every compressed position.
    info.can_shift_positions = 0;
    info.can_remove_tokens = 0;
    info.can_save_state = 1;  // states replay tokens, which works for every policy
    *out = info;
    return FKV_OK;
  });
}

}  // extern "C"
