#include "backend/backend.h"

#include <algorithm>
#include <vector>

#include "model/quant.h"

namespace fkv {

size_t kv_type_bytes(KvType t) { return t == KvType::kF16 ? 2 : 4; }

void upload_repacked_q4_0x8(Backend& be, const Weight& w, const void* data, size_t slice_bytes) {
  const size_t rb = row_bytes(w.type, w.cols);
  const int64_t slice = std::max<int64_t>(1, int64_t(slice_bytes / rb));
  std::vector<uint8_t> packed(size_t(std::min(slice, w.rows)) * rb);
  for (int64_t r0 = 0; r0 < w.rows; r0 += slice) {
    const int64_t n = std::min(slice, w.rows - r0);
    repack_q4_0x8(static_cast<const uint8_t*>(data) + size_t(r0) * rb, n, w.cols, packed.data());
    be.upload(*w.buf, size_t(r0) * rb, packed.data(), size_t(n) * rb);
  }
}

}  // namespace fkv
