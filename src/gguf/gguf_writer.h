// Minimal GGUF v3 writer for the project's own tools (llama2.c converter, random models) and for tests
// that build hostile or odd files. Not a general-purpose writer: it does not reject duplicate keys or
// tensor names, so tests can write such files on purpose.
#pragma once
#include <cstdint>
#include <functional>
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
  // Any value the reader can return, nested arrays included. Integers are written at v.type's width;
  // a GgufValue whose variant does not match its type throws kInvalidArgument.
  void set_value(const std::string& key, const GgufValue& v);
  // dims in GGUF order (dims[0] = row length); data is already encoded in `type`.
  void add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type,
                  std::vector<uint8_t> data);
  // Streaming variant for files larger than memory: fill(dst) is called at write time with a buffer of
  // exactly tensor_bytes(dims, type) bytes to encode the tensor into. Tensors are filled one at a time
  // (the previous one is written to disk meanwhile), in the order they were added.
  using FillFn = std::function<void(uint8_t* dst)>;
  void add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type, FillFn fill);
  // Writes the file (alignment 32). Throws kIo on failure.
  void write(const std::string& path) const;
  // For tests: the bytes write() would produce.
  std::vector<uint8_t> serialize() const;

  // Bytes of a tensor of these dims and type; throws kInvalidArgument on a bad shape.
  static uint64_t tensor_bytes(const std::vector<int64_t>& dims, GgmlType type);

 private:
  struct Kv {
    std::string key;
    GgufValueType type;
    std::vector<uint8_t> payload;
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    GgmlType type;
    std::vector<uint8_t> data;
    FillFn fill;  // set instead of data for streamed tensors
    uint64_t n_bytes = 0;
  };
  std::vector<uint8_t> header() const;  // everything before the data section, padded
  std::vector<Kv> kv_;
  std::vector<Tensor> tensors_;
};

// Writes a copy of src to path with every metadata pair and tensor of src, except that `key` is set to the
// string `value` (replaced when src has it). src's general.alignment is dropped: the copy is written with
// the writer's alignment. Throws kIo on failure.
void write_gguf_copy_with_string(const GgufFile& src, const std::string& path, const std::string& key,
                                 const std::string& value);

}  // namespace fkv
