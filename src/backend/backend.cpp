#include "backend/backend.h"

namespace fkv {

size_t kv_type_bytes(KvType t) { return t == KvType::kF16 ? 2 : 4; }

}  // namespace fkv
