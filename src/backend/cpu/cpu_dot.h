// Fast fused dequantize-and-dot for the decode matvec of the commonest weight formats. The result equals
// quant.h's dot_row up to fp32 summation order (tests/unit/cpu_dot_test.cpp). Compiled for AVX2+FMA and
// for baseline x86-64, picked at run time.
#pragma once
#include <cstdint>

#include "model/ggml_type.h"

namespace fkv::cpu {

// sum_i dequant(row)[i] * x[i]; n is a multiple of the block size.
float dot_quantized(GgmlType type, const uint8_t* row, const float* x, int64_t n);

}  // namespace fkv::cpu
