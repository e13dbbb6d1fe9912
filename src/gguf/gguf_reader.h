// GGUF v2/v3 reader: memory-maps the file, parses metadata and the tensor table, and validates every
// offset, size, count and string length against the file size before using it. Hostile files give
// fkv::Error(kBadFile) naming what is wrong; they never crash.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "model/ggml_type.h"

namespace fkv {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

struct GgufArray;
// One metadata value. Arrays hold their element type and the values (strings as std::string).
struct GgufValue {
  GgufValueType type;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> value;
};
struct GgufArray {
  GgufValueType elem_type;
  std::vector<GgufValue> items;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the fastest-varying (the row length)
  GgmlType type;
  uint64_t offset;      // from the start of the data section
  uint64_t n_bytes;     // validated: offset + n_bytes lies inside the file
  const uint8_t* data;  // points into the mapping
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Maps and validates the whole file. Throws fkv::Error (kIo, kBadFile, kUnsupported).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section in the file
  uint32_t alignment() const { return alignment_; }      // general.alignment, or 32

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent

  // Typed getters: throw kBadFile naming the key when present with the wrong type; return nullopt when
  // absent.
  std::optional<int64_t> get_int(const std::string& key) const;   // any integer type
  std::optional<double> get_float(const std::string& key) const;  // float or integer types
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  const GgufArray* get_array(const std::string& key) const;  // nullptr when absent

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // nullptr when absent

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t data_offset_ = 0;
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  friend class GgufParser;
};

}  // namespace fkv
