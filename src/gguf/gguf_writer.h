// Minimal GGUF v3 writer for the project's own tools (llama2.c converter, random models) and for tests
// that build hostile or odd files. Not a general-purpose writer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_reader.h"

namespace fkv {

class GgufWriter {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // dims in GGUF order (dims[0] = row length); data is already encoded in `type`.
  void add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type, std::vector<uint8_t> data);
  // Writes the file (alignment 32). Throws kIo on failure.
  void write(const std::string& path) const;
  // For tests: the bytes write() would produce.
  std::vector<uint8_t> serialize() const;

 private:
  struct Kv { std::string key; GgufValueType type; std::vector<uint8_t> payload; };
  struct Tensor { std::string name; std::vector<int64_t> dims; GgmlType type; std::vector<uint8_t> data; };
  std::vector<Kv> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace fkv
