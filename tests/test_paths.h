// Where tests find the models and data they use. The default model is fetched by
// tools/fetch-default-model.sh (the README's test command and .ci/run do it first); a missing model is a
// test failure, not a skip, so that CI cannot pass without it.
#pragma once
#include <string>

#include "model/default_model.h"

namespace fkv::test {

inline std::string source_dir() { return FKV_SOURCE_DIR; }
inline std::string fixture(const std::string& name) { return source_dir() + "/tests/fixtures/" + name; }
inline std::string shared_dir() { return source_dir() + "/../shared"; }

inline std::string default_model_path() { return fkv::default_model_path(); }

}  // namespace fkv::test
