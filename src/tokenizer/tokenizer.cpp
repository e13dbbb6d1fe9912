#include "tokenizer/tokenizer.h"

namespace fkv {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  return decode(ids, false);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  bool strip = decode_strips_leading_space();
  for (int32_t id : ids) {
    std::string piece = render_special && is_control(id) ? token_text(id) : token_bytes(id);
    if (strip && !piece.empty()) {
      if (piece[0] == ' ') piece.erase(0, 1);
      strip = false;
    }
    out += piece;
  }
  return out;
}

}  // namespace fkv
