// Samplers and streaming generation through the C API.
#include <mutex>
#include <string>

#include "api/api_guard.h"
#include "api/api_handles.h"

using namespace fkv;
using namespace fkv::api;

extern "C" {

fkv_status fkv_sampler_options_init(fkv_sampler_options* o) {
  return guard(__func__, [&] {
    require_ptr(o, "options");
    const SamplerOptions d;  // the engine's defaults
    *o = fkv_sampler_options{};
    o->struct_size = sizeof(fkv_sampler_options);
    o->temperature = d.temperature;
    o->top_k = d.top_k;
    o->top_p = d.top_p;
    o->repetition_penalty = d.repetition_penalty;
    o->repeat_last_n = d.repeat_last_n;
    o->seed = d.seed;
    return FKV_OK;
  });
}

fkv_status fkv_sampler_create(const fkv_sampler_options* options, fkv_sampler** out) {
  return guard(__func__, [&] {
    require_ptr(out, "out_sampler");
    fkv_sampler_options o;
    fkv_sampler_options_init(&o);
    if (options) {
      require(options->struct_size == sizeof(fkv_sampler_options), ErrorCode::kInvalidArgument,
              "sampler options were not initialised with fkv_sampler_options_init");
      o = *options;
    }
    SamplerOptions so;
    so.temperature = o.temperature;
    so.top_k = o.top_k;
    so.top_p = o.top_p;
    so.repetition_penalty = o.repetition_penalty;
    so.repeat_last_n = o.repeat_last_n;
    so.seed = o.seed;
    auto s = std::make_unique<fkv_sampler>();
    s->sampler = std::make_unique<Sampler>(so);  // validates the ranges
    *out = s.release();
    return FKV_OK;
  });
}

fkv_status fkv_sampler_free(fkv_sampler* s) {
  delete s;  // cannot throw
  clear_last_error();
  return FKV_OK;
}

fkv_status fkv_sampler_reset(fkv_sampler* s) {
  return guard(__func__, [&] {
    require_ptr(s, "sampler");
    s->sampler->reset();
    return FKV_OK;
  });
}

fkv_status fkv_sampler_accept(fkv_sampler* s, int32_t token) {
  return guard(__func__, [&] {
    require_ptr(s, "sampler");
    require(token >= 0, ErrorCode::kInvalidArgument, "token id " + std::to_string(token) + " is negative");
    s->sampler->accept(token);
    return FKV_OK;
  });
}

fkv_status fkv_sample(fkv_sampler* s, const fkv_context* c, int32_t* out_token) {
  return guard(__func__, [&] {
    require_ptr(s, "sampler");
    require_ptr(c, "context");
    require_ptr(out_token, "out_token");
    require(c->logits != nullptr, ErrorCode::kInvalidArgument,
            "the context has no logits yet: evaluate tokens first");
    *out_token = s->sampler->sample(*c->logits);
    return FKV_OK;
  });
}

fkv_status fkv_generate(fkv_context* c, fkv_sampler* s, const int32_t* prompt, size_t n_prompt,
                        int32_t max_tokens, fkv_token_fn on_token, void* user_data,
                        int32_t* out_n_generated) {
  return guard(__func__, [&] {
    require_ptr(c, "context");
    require_ptr(s, "sampler");
    require(prompt || n_prompt == 0, ErrorCode::kInvalidArgument, "prompt is NULL but n_prompt is not 0");
    require(max_tokens >= 0, ErrorCode::kInvalidArgument, "max_tokens must not be negative");
    std::lock_guard lock(c->model->run_mutex);
    if (n_prompt > 0) {
      evaluate(*c, prompt, n_prompt);
      for (size_t i = 0; i < n_prompt; ++i) s->sampler->accept(prompt[i]);
    }
    require(c->logits != nullptr, ErrorCode::kInvalidArgument,
            "nothing to continue from: pass a prompt or evaluate tokens first");
    const Tokenizer* tok = c->model->tokenizer.get();
    int32_t n = 0;
    for (; n < max_tokens;) {
      const int32_t id = s->sampler->sample(*c->logits);
      if (tok && tok->is_end_of_generation(id)) break;
      const std::string text = tok ? tok->token_bytes(id) : std::string();
      ++n;
      if (on_token && on_token(id, text.c_str(), text.size(), user_data) != 0) break;
      if (n == max_tokens || c->session->n_past() >= c->session->ctx()) break;
      evaluate(*c, &id, 1);
    }
    if (out_n_generated) *out_n_generated = n;
    return FKV_OK;
  });
}

}  // extern "C"
