// The command-line vocabulary every fkv tool shares (../docs/ARCHITECTURE.md, "Command lines"):
// --model, --backend, --device, --ctx, --threads, --json and the KV options. Exit codes: 0 success,
// 1 a failed check, 2 bad usage or input.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace fkv::tools {

constexpr int kExitOk = 0;
constexpr int kExitCheckFailed = 1;
constexpr int kExitBadInput = 2;

struct CommonOptions {
  std::string model;            // empty: the default model, fetched on first use
  std::string backend = "auto"; // cpu | vulkan | cuda | auto
  int device = -1;              // -1: the backend's choice
  int ctx = 0;                  // 0: the model's context length (capped, see engine)
  int threads = 0;              // 0: all hardware threads
  bool json = false;
  // KV cache policy
  std::string kv = "full";      // full | window | fourier
  int sink = 4;
  int window = 1020;
  int fourier_n = 512;
  double fourier_ratio = -1;    // <0: the profile's own fractions
  std::string fourier_profile;
  std::string fourier_norm = "lsq";  // lsq | range (KvOptions::fourier_norm)
};

// Adds the shared options to app. with_json: the tool reports and accepts --json.
void add_common_options(CLI::App& app, CommonOptions& opts, bool with_json);

// Resolves opts.model: the given path, or the default model (running tools/fetch-default-model.sh when
// it is not cached yet). Throws fkv::Error when it cannot.
std::string resolve_model_path(const CommonOptions& opts);

// Runs body, mapping fkv::Error and std::exception to a message on stderr and exit code 2 (bad input) or 1.
int run_tool(const char* tool_name, int (*body)(int, char**), int argc, char** argv);

}  // namespace fkv::tools
