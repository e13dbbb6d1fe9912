#include "model/ggml_type.h"

#include "util/error.h"

namespace fkv {

namespace {

// Block layouts as ggml defines them (ggml-common.h): bytes = scales + packed quants.
constexpr TypeTraits kF32{"f32", 1, 4};
constexpr TypeTraits kF16{"f16", 1, 2};
constexpr TypeTraits kBF16{"bf16", 1, 2};
constexpr TypeTraits kQ4_0{"q4_0", 32, 2 + 16};
constexpr TypeTraits kQ4_1{"q4_1", 32, 2 + 2 + 16};
constexpr TypeTraits kQ8_0{"q8_0", 32, 2 + 32};
constexpr TypeTraits kQ4_K{"q4_k", 256, 2 + 2 + 12 + 128};
constexpr TypeTraits kQ6_K{"q6_k", 256, 128 + 64 + 16 + 2};

const TypeTraits* find_traits(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::F32:
      return &kF32;
    case GgmlType::F16:
      return &kF16;
    case GgmlType::BF16:
      return &kBF16;
    case GgmlType::Q4_0:
      return &kQ4_0;
    case GgmlType::Q4_1:
      return &kQ4_1;
    case GgmlType::Q8_0:
      return &kQ8_0;
    case GgmlType::Q4_K:
      return &kQ4_K;
    case GgmlType::Q6_K:
      return &kQ6_K;
  }
  return nullptr;
}

}  // namespace

bool is_supported_type(uint32_t type_id) {
  return find_traits(type_id) != nullptr;
}

const TypeTraits& type_traits(GgmlType type) {
  const TypeTraits* t = find_traits(static_cast<uint32_t>(type));
  require(t != nullptr, ErrorCode::kUnsupported,
          "unsupported tensor type " + type_name(static_cast<uint32_t>(type)));
  return *t;
}

std::string type_name(uint32_t type_id) {
  const TypeTraits* t = find_traits(type_id);
  return t ? std::string(t->name) : "unknown(" + std::to_string(type_id) + ")";
}

size_t row_bytes(GgmlType type, int64_t n) {
  const TypeTraits& t = type_traits(type);
  require(n >= 0 && n % t.block_elems == 0, ErrorCode::kInvalidArgument,
          "row of " + std::to_string(n) + " values is not a multiple of the " + t.name + " block size " +
              std::to_string(t.block_elems));
  return static_cast<size_t>(n / t.block_elems) * t.block_bytes;
}

}  // namespace fkv
