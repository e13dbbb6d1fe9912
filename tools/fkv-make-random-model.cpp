// fkv-make-random-model --shape llama3-8b|llama3-1b|small|tiny --type f16|q4_0|... OUT.gguf [--seed S]:
// random-weight LLaMA GGUFs for speed measurements at real shapes (weights do not change decode speed).
#include <CLI/CLI.hpp>
#include <map>

#include "common/cli_options.h"
#include "model/random_model.h"

namespace {

int make_main(int argc, char** argv) {
  CLI::App app{"Write a random-weight LLaMA GGUF at a real model's shape"};
  fkv::RandomModelOptions o;
  std::string type = "f16", out_path;
  const std::map<std::string, fkv::GgmlType> types = {
      {"f32", fkv::GgmlType::F32},   {"f16", fkv::GgmlType::F16},   {"bf16", fkv::GgmlType::BF16},
      {"q4_0", fkv::GgmlType::Q4_0}, {"q4_1", fkv::GgmlType::Q4_1}, {"q8_0", fkv::GgmlType::Q8_0},
      {"q4_k", fkv::GgmlType::Q4_K}, {"q6_k", fkv::GgmlType::Q6_K}};
  std::vector<std::string> type_names;
  for (const auto& [name, t] : types) type_names.push_back(name);
  app.add_option("--shape", o.shape, "model shape")
      ->required()
      ->check(CLI::IsMember(fkv::random_model_shape_names()));
  app.add_option("--type", type, "storage type of the weight matrices (norms stay f32)")
      ->check(CLI::IsMember(type_names))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--threads,-t", o.threads, "generator threads (default: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--llama3-scaling-keys", o.llama3_scaling_keys,
               "also write llama.rope.scaling.type=llama3 and .factor (llama.cpp cannot load such files)");
  app.add_option("OUT", out_path, "GGUF file to write")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? fkv::tools::kExitOk : fkv::tools::kExitBadInput;
  }
  o.type = types.at(type);
  o.progress = true;
  fkv::make_random_model(o, out_path);
  return fkv::tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-make-random-model", make_main, argc, argv);
}
