// Dequantizing reference for every weight format fkv reads. The CPU backend's matmul and every
// GPU shader are checked against these functions.
#pragma once
#include <cstdint>

#include "model/ggml_type.h"

namespace fkv {

// Decodes n values (a multiple of the type's block size) starting at src into dst (fp32).
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Encoders, used by tests, fkv-make-random-model and fkv-convert-llama2c. n is a multiple of the block size.
// Q4_0, Q4_1 and Q8_0 round as ggml's reference encoders do; Q4_K and Q6_K use simpler scale searches
// (same block layout, so files read back the same way anywhere, but not bit-identical to ggml's output).
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// sum_i dequant(row)[i] * x[i] over n values (a multiple of the block size), accumulated in fp32. Same
// result as dequantize_row followed by a dot product, up to summation order; no heap allocation, safe to
// call from many threads.
float dot_row(GgmlType type, const void* row, const float* x, int64_t n);

}  // namespace fkv
