#include "model/default_model.h"

#include <cstdlib>

namespace fkv {

std::string default_model_path() {
  const char* models = std::getenv("FKV_MODELS");
  const char* home = std::getenv("HOME");
  const std::string dir =
      models && *models ? models : std::string(home && *home ? home : "/tmp") + "/.cache/fkv";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace fkv
