// fkv-convert-llama2c IN.bin OUT.gguf: a llama2.c checkpoint to a LLaMA GGUF (F32 tensors, no tokenizer).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/cli_options.h"
#include "model/llama2c_convert.h"

namespace {

int convert_main(int argc, char** argv) {
  CLI::App app{"Convert a llama2.c checkpoint (version 0) to a LLaMA GGUF with F32 tensors"};
  std::string in_path, out_path;
  app.add_option("IN", in_path, "llama2.c checkpoint (.bin)")->required()->check(CLI::ExistingFile);
  app.add_option("OUT", out_path, "GGUF file to write")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? fkv::tools::kExitOk : fkv::tools::kExitBadInput;
  }
  const fkv::Llama2cConfig c = fkv::convert_llama2c(in_path, out_path);
  std::fprintf(stderr, "wrote %s: dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, context %d%s\n",
               out_path.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
               c.seq_len, c.shared_classifier ? ", tied output" : "");
  return fkv::tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  return fkv::tools::run_tool("fkv-convert-llama2c", convert_main, argc, argv);
}
