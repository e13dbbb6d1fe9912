// Where the default model (SmolLM2-135M-Instruct, Q4_1) lives once tools/fetch-default-model.sh has fetched it:
// $FKV_MODELS, else $HOME/.cache/fkv, else /tmp/.cache/fkv — the same rule as the script's.
#pragma once
#include <string>

namespace fkv {

std::string default_model_path();

}  // namespace fkv
