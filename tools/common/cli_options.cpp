#include "common/cli_options.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "model/default_model.h"
#include "util/error.h"

namespace fkv::tools {

namespace fs = std::filesystem;

void add_common_options(CLI::App& app, CommonOptions& o, bool with_json) {
  app.add_option("--model,-m", o.model,
                 "GGUF model file (default: SmolLM2-135M-Instruct, fetched on first use)");
  app.add_option("--backend", o.backend, "cpu | vulkan | cuda | auto")
      ->check(CLI::IsMember({"cpu", "vulkan", "cuda", "auto"}))
      ->capture_default_str();
  app.add_option("--device", o.device, "device index within the backend (see --list-devices)");
  app.add_option("--ctx", o.ctx, "context length in tokens (default: the model's, at most 8192)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--threads,-t", o.threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
  if (with_json) app.add_flag("--json", o.json, "print results as JSON");
  app.add_option("--kv", o.kv, "KV cache policy: full | window | fourier")
      ->check(CLI::IsMember({"full", "window", "fourier"}))
      ->capture_default_str();
  app.add_option("--sink", o.sink, "sink tokens kept exact (window, fourier)")->capture_default_str();
  app.add_option("--window", o.window, "recent tokens kept exact (window, fourier)")->capture_default_str();
  app.add_option("--fourier-n", o.fourier_n, "Fourier frequencies per compressed dim")->capture_default_str();
  app.add_option("--fourier-ratio", o.fourier_ratio, "fraction of dims compressed (overrides the profile)");
  app.add_option(
      "--fourier-profile", o.fourier_profile,
      "calibration profile (JSON) from fkv-calibrate; default: the one stored in the model file, if "
      "any, else the heuristic; 'heuristic': the heuristic");
  app.add_option("--fourier-norm", o.fourier_norm,
                 "fit of the reconstruction: lsq (least squares, fkv) | range (FOURIER.md's range match)")
      ->check(CLI::IsMember({"lsq", "range"}))
      ->capture_default_str();
}

std::string resolve_model_path(const CommonOptions& o) {
  if (!o.model.empty()) {
    require(fs::exists(o.model), ErrorCode::kIo, "model file not found: " + o.model);
    return o.model;
  }
  const fs::path cached = default_model_path();
  if (fs::exists(cached)) return cached.string();
  const fs::path script = fs::path(FKV_SOURCE_DIR) / "tools" / "fetch-default-model.sh";
  require(fs::exists(script), ErrorCode::kIo,
          "no --model given and the default model is not cached at " + cached.string());
  std::fprintf(stderr, "fetching the default model (SmolLM2-135M-Instruct, ~98 MB) into %s ...\n",
               cached.parent_path().c_str());
  const std::string cmd = "bash '" + script.string() + "' >&2";
  require(std::system(cmd.c_str()) == 0 && fs::exists(cached), ErrorCode::kIo,
          "fetching the default model failed; run " + script.string() + " by hand to see why");
  return cached.string();
}

int run_tool(const char* tool_name, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s: %s\n", tool_name, error_code_name(e.code()), e.what());
    return e.code() == ErrorCode::kInternal ? kExitCheckFailed : kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool_name, e.what());
    return kExitCheckFailed;
  }
}

}  // namespace fkv::tools
