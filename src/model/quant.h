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

// Q4_0x8: Q4_0 rows as the GPU backends keep them (Backend::upload_weight of CUDA and Vulkan), for aligned
// loads: ggml's 18-byte blocks are only 2-byte aligned. A row of a multiple of 256 values is cut into runs
// of 8 blocks (144 bytes); a run holds the 8 blocks' f16 scales (bytes 0-15, block k at 2k), then their 16
// nibble bytes each (block k at 16 + 16k, in ggml's order). A row keeps its byte count, so a run starts
// 16-byte aligned wherever the row does.
constexpr int64_t kQ4_0x8RunValues = 256;
constexpr size_t kQ4_0x8RunBytes = 144;
// True when upload_weight repacks a weight of this type and row length (Q4_0, cols % 256 == 0).
bool q4_0x8_applies(GgmlType type, int64_t cols);
// ggml Q4_0 rows (cols a multiple of 256) -> Q4_0x8, the same number of bytes; src and dst must not overlap.
void repack_q4_0x8(const void* src, int64_t rows, int64_t cols, void* dst);

}  // namespace fkv
