// One backend op as plain data: what the backend runs, and what the decode graph compares between steps.
#pragma once
#include <cstdint>
#include <cstring>

namespace fkv::cuda {

enum class OpKind : int32_t {
  kEmbed,
  kRmsNorm,
  kMatvec,
  kRope,
  kSwiglu,
  kAdd,
  kKvStore,
  kAttention,
  kCopy,
  kSplitAppend,     // split_kv_append (split_kv.h has the fields)
  kSplitAttention,  // split_attention, direct (decode) path
};

// Every field is zero unless the op sets it, so that two records compare bytewise. pos0 is kept apart: a
// decode step repeats with only the position changing, and a captured graph reads it from the device.
struct Op {
  OpKind kind{};
  int32_t uses_pos = 0;  // 1 when the op reads pos0
  const void* p[24] = {};  // device pointers (the split-cache ops use the most: split_kv.h)
  int64_t i[24] = {};      // sizes, types, flags
  float f[2] = {0.0f, 0.0f};                                          // eps, scale
  int pos0 = 0;

  bool same_as(const Op& o) const {
    return kind == o.kind && uses_pos == o.uses_pos && std::memcmp(p, o.p, sizeof p) == 0 &&
           std::memcmp(i, o.i, sizeof i) == 0 && std::memcmp(f, o.f, sizeof f) == 0;
  }
};

}  // namespace fkv::cuda
