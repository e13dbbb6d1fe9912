// Tensor storage types as numbered by the GGUF format (ggml_type), and their block layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fkv {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
};

struct TypeTraits {
  const char* name;
  int64_t block_elems;  // values per block (1 for plain floats)
  size_t block_bytes;   // bytes per block
};

// Returns false for type ids this build cannot read (the caller names the tensor in its error).
bool is_supported_type(uint32_t type_id);
// Traits of a supported type; throws fkv::Error(kUnsupported) otherwise.
const TypeTraits& type_traits(GgmlType type);
std::string type_name(uint32_t type_id);  // "q4_1", or "unknown(77)"

// Bytes of a row of n values; throws if n is not a multiple of the block size.
size_t row_bytes(GgmlType type, int64_t n);

}  // namespace fkv
