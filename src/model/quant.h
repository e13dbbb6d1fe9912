// Dequantizing reference for every weight format fkv reads. The CPU backend's matmul and every
// GPU shader are checked against these functions.
#pragma once
#include <cstdint>

#include "model/ggml_type.h"

namespace fkv {

// Decodes n values (a multiple of the type's block size) starting at src into dst (fp32).
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Encoders, used by tests, fkv-make-random-model and fkv-convert-llama2c. n is a multiple of the block size.
// Rounding follows ggml's reference encoders so that files we write read back the same way elsewhere.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace fkv
