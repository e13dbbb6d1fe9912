// Opening a model for a tool: resolve the path, create the backend, load with a progress bar.
#pragma once
#include <memory>

#include "backend/backend.h"
#include "common/cli_options.h"
#include "gguf/gguf_reader.h"
#include "kv/kv_options.h"
#include "model/llama_model.h"

namespace fkv::tools {

struct LoadedModel {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

// quiet: no progress bar (e.g. for --json output). Throws fkv::Error.
LoadedModel load_model(const CommonOptions& opts, bool quiet);

// The KV options named on the command line.
KvOptions kv_options(const CommonOptions& opts);

}  // namespace fkv::tools
