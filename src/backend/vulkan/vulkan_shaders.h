// The SPIR-V of shaders/*.comp, compiled by glslc at build time and embedded (cmake/EmbedSpirv.cmake).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fkv {

struct EmbeddedShader {
  const char* name;  // the .comp file's name without extension
  const uint32_t* words;
  size_t n_words;
};

const std::vector<EmbeddedShader>& embedded_shaders();

// Throws kInternal for a name that is not embedded.
const EmbeddedShader& find_shader(const std::string& name);

}  // namespace fkv
