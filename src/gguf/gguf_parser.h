// Internal: fills a GgufFile from its mapped bytes. Split from gguf_reader.cpp so that the validation
// rules (every count, length, offset checked against the file size) read in one place.
#pragma once
#include "gguf/gguf_reader.h"

namespace fkv {

class GgufParser {
 public:
  // Parses f.base_[0, f.size_) into f's metadata and tensor table. Throws fkv::Error on malformed input.
  static void parse(GgufFile& f);
};

}  // namespace fkv
