// Where tests find the models and data they use. The default model is fetched by
// tools/fetch-default-model.sh (the README's test command and .ci/run do it first); a missing model is a
// test failure, not a skip, so that CI cannot pass without it.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fkv::test {

inline std::string source_dir() { return FKV_SOURCE_DIR; }
inline std::string fixture(const std::string& name) { return source_dir() + "/tests/fixtures/" + name; }
inline std::string shared_dir() { return source_dir() + "/../shared"; }

inline std::string default_model_path() {
  const char* env = std::getenv("FKV_MODELS");
  const char* home = std::getenv("HOME");
  std::string dir = env && *env ? env : std::string(home ? home : "/tmp") + "/.cache/fkv";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace fkv::test
