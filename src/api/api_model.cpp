// Loading and describing a model through the C API.
#include <cstring>
#include <string>

#include "api/api_guard.h"
#include "api/api_handles.h"
#include "backend/registry.h"
#include "gguf/gguf_reader.h"

using namespace fkv;
using namespace fkv::api;

namespace {

void copy_fixed(char* dst, size_t capacity, const std::string& src) {
  const size_t n = std::min(src.size(), capacity - 1);
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace

namespace fkv::api {

SessionOptions session_options_from(const fkv_context_options& o) {
  require(o.struct_size == sizeof(fkv_context_options), ErrorCode::kInvalidArgument,
          "context options were not initialised with fkv_context_options_init");
  require(o.n_ctx >= 0, ErrorCode::kInvalidArgument, "n_ctx must not be negative");
  require(o.n_batch >= 0, ErrorCode::kInvalidArgument, "n_batch must not be negative");
  require(o.kv_sink >= 0 && o.kv_window >= 0 && o.fourier_n >= 0, ErrorCode::kInvalidArgument,
          "kv_sink, kv_window and fourier_n must not be negative");
  require(o.fourier_ratio <= 1.0, ErrorCode::kInvalidArgument, "fourier_ratio must be at most 1");
  SessionOptions s;
  s.ctx = o.n_ctx;
  if (o.n_batch > 0) s.max_batch = o.n_batch;
  s.kv.policy = o.kv_policy ? o.kv_policy : "full";
  require(s.kv.policy == "full" || s.kv.policy == "window" || s.kv.policy == "fourier",
          ErrorCode::kInvalidArgument,
          "unknown kv_policy '" + s.kv.policy + "' (expected full, window or fourier)");
  s.kv.sink = o.kv_sink;
  s.kv.window = o.kv_window;
  s.kv.fourier_n = o.fourier_n;
  s.kv.fourier_ratio = o.fourier_ratio;
  s.kv.fourier_profile = o.fourier_profile ? o.fourier_profile : "";
  require(o.fourier_fit_tokens > 0, ErrorCode::kInvalidArgument, "fourier_fit_tokens must be positive");
  s.kv.fourier_fit_tokens = o.fourier_fit_tokens;
  return s;
}

}  // namespace fkv::api

extern "C" {

fkv_status fkv_context_options_init(fkv_context_options* o) {
  return guard(__func__, [&] {
    require_ptr(o, "options");
    const KvOptions kv;  // the engine's defaults, so that C and C++ agree
    *o = fkv_context_options{};
    o->struct_size = sizeof(fkv_context_options);
    o->kv_policy = "full";
    o->kv_sink = kv.sink;
    o->kv_window = kv.window;
    o->fourier_n = kv.fourier_n;
    o->fourier_ratio = kv.fourier_ratio;
    o->fourier_fit_tokens = kv.fourier_fit_tokens;
    return FKV_OK;
  });
}

fkv_status fkv_model_options_init(fkv_model_options* o) {
  return guard(__func__, [&] {
    require_ptr(o, "options");
    *o = fkv_model_options{};
    o->struct_size = sizeof(fkv_model_options);
    o->backend = "auto";
    o->device = -1;
    fkv_context_options_init(&o->context);
    return FKV_OK;
  });
}

fkv_status fkv_model_load(const char* path, const fkv_model_options* options, fkv_model** out_model) {
  return guard(__func__, [&] {
    require_ptr(path, "path");
    require_ptr(out_model, "out_model");
    fkv_model_options o;
    fkv_model_options_init(&o);
    if (options) {
      require(options->struct_size == sizeof(fkv_model_options), ErrorCode::kInvalidArgument,
              "model options were not initialised with fkv_model_options_init");
      o = *options;
    }
    require(o.n_threads >= 0, ErrorCode::kInvalidArgument, "n_threads must not be negative");
    require(o.device >= -1, ErrorCode::kInvalidArgument, "device must be -1 or a device index");

    auto model = std::make_unique<fkv_model>();
    model->context_defaults = session_options_from(o.context);  // validate before the slow part

    BackendOptions bo;
    bo.name = o.backend ? o.backend : "auto";
    bo.device = o.device;
    bo.threads = o.n_threads;
    model->backend = create_backend(bo);

    const auto file = GgufFile::open(path);
    LoadProgress progress;
    if (o.progress) {
      progress = [cb = o.progress, user = o.progress_user_data](float f) { return cb(f, user) == 0; };
    }
    model->weights = LlamaModel::load(*file, *model->backend, progress);
    // Benchmark models written with random weights carry no vocabulary; they still run on token ids.
    if (file->find("tokenizer.ggml.model")) {
      model->tokenizer = Tokenizer::from_gguf(*file);
      model->chat_template = chat_template_from_gguf(*file);
    }
    *out_model = model.release();
    return FKV_OK;
  });
}

fkv_status fkv_model_free(fkv_model* model) {
  return guard(__func__, [&] {
    if (!model) return FKV_OK;
    require(model->n_contexts.load() == 0, ErrorCode::kInvalidArgument,
            std::to_string(model->n_contexts.load()) + " context(s) still use this model; free them first");
    delete model;
    return FKV_OK;
  });
}

fkv_status fkv_model_get_info(const fkv_model* model, fkv_model_info* out) {
  return guard(__func__, [&] {
    require_ptr(model, "model");
    require_ptr(out, "out_info");
    const LlamaHparams& hp = model->weights->hparams();
    fkv_model_info info{};
    info.n_vocab = hp.vocab;
    info.n_layers = hp.n_layers;
    info.n_embd = hp.dim;
    info.n_heads = hp.n_heads;
    info.n_kv_heads = hp.n_kv_heads;
    info.head_dim = hp.head_dim;
    info.n_ctx_train = hp.context_length;
    info.bos_token = model->tokenizer ? model->tokenizer->bos_id() : -1;
    info.eos_token = model->tokenizer ? model->tokenizer->eos_id() : -1;
    info.has_tokenizer = model->tokenizer ? 1 : 0;
    info.weight_bytes = model->weights->weight_bytes();
    copy_fixed(info.backend, sizeof info.backend, model->backend->name());
    copy_fixed(info.device, sizeof info.device, model->backend->device_name());
    copy_fixed(info.chat_template, sizeof info.chat_template, chat_template_name(model->chat_template.kind));
    *out = info;
    return FKV_OK;
  });
}

}  // extern "C"
