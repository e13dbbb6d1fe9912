// Host implementations of the split-cache ops (backend.h: split_kv_append, split_attention, fourier_project,
// fourier_accumulate) on host pointers. The CPU backend calls them on its buffers directly; the Backend base
// class calls them on downloaded copies (its generic fallback for backends that have no kernels yet).
#pragma once
#include <cstdint>

#include "backend/backend.h"

namespace fkv {
class ThreadPool;
namespace cpu {

// Host pointers to one part's (K or V) buffers of a SplitKvLayer; null where the buffer is absent.
struct HostSplitPart {
  uint8_t* sink = nullptr;
  uint8_t* window = nullptr;
  uint8_t* kept = nullptr;
  float* pending = nullptr;
  float* coef = nullptr;
  float* norm = nullptr;
};

void split_kv_append(const float* k, const float* v, int n, int pos0, const AttentionShape& s,
                     const SplitKvLayer& layout, HostSplitPart& hk, HostSplitPart& hv);

// pool may be null (single-threaded).
void split_attention(ThreadPool* pool, const float* q, const float* k, const float* v, int n, int pos0,
                     const AttentionShape& s, const SplitKvLayer& layout, const HostSplitPart& hk,
                     const HostSplitPart& hv, SplitAttentionPath path, float* out);

// The path kAuto resolves to for this call (cheapest: spectral when few queries meet a long fitted middle).
SplitAttentionPath resolve_split_path(int n, int pos0, const AttentionShape& s, const SplitKvLayer& layout,
                                      SplitAttentionPath path);

}  // namespace cpu
}  // namespace fkv
