// The CPU backend's loops, free functions so that other CPU code (the Fourier reference, tests) can reuse them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace fkv {
class ThreadPool;
namespace cpu {

// fp32 dot product with several partial sums, so that the compiler vectorises it without -ffast-math.
float dot(const float* a, const float* b, int64_t n);

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out);
// out[i, r] = sum_c W[r, c] x[i, c]; W rows are `cols` values in `type`.
void matmul(ThreadPool& pool, GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, const float* x, int n,
            float* out);
void rope(float* x, int n, int n_heads, int pos0, const RopeParams& p);
// Converts n rows of row_len fp32 values into a cache of `type`, starting at row first_row.
void store_rows(const float* src, int n, size_t row_len, KvType type, uint8_t* cache, size_t first_row);
void attention(ThreadPool& pool, const float* q, int n, int pos0, const AttentionShape& s, KvType type,
               const uint8_t* k_cache, const uint8_t* v_cache, float* out);

}  // namespace cpu

// RoPE frequency of pair k (dims 2k, 2k+1), Llama 3 scaling included: the one definition every backend mirrors.
float rope_frequency(const RopeParams& p, int pair);

}  // namespace fkv
