// A random-weight model written to a temporary GGUF file and loaded on a backend, removed again when the
// test ends; for the Vulkan tests that run whole decode steps (replay, profile).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gguf/gguf_reader.h"
#include "model/llama_model.h"
#include "model/random_model.h"

namespace fkv::test {

struct RandomModelFile {
  std::string path;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LlamaModel> model;
  RandomModelFile(Backend& be, const std::string& shape, GgmlType type) {
    path = (std::filesystem::temp_directory_path() /
            ("fkv_vulkan_" + shape + "_" + std::to_string(int(type)) + "_" + std::to_string(getpid()) + ".gguf"))
               .string();
    RandomModelOptions o;
    o.shape = shape;
    o.type = type;
    o.threads = 2;
    make_random_model(o, path);
    file = GgufFile::open(path);
    model = LlamaModel::load(*file, be);
  }
  ~RandomModelFile() {
    model.reset();
    file.reset();
    std::filesystem::remove(path);
  }
  RandomModelFile(const RandomModelFile&) = delete;
  RandomModelFile& operator=(const RandomModelFile&) = delete;
};

}  // namespace fkv::test
