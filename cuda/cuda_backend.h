// The CUDA backend: every op of backend.h as CUDA kernels on one stream (cuBLAS for prefill GEMMs).
#pragma once
#include <memory>

#include "backend/backend.h"

namespace fkv {

// Throws fkv::Error(kBackend) when there is no usable CUDA device or `device` is out of range.
// device < 0: device 0 (or FKV_CUDA_DEVICE when set).
std::unique_ptr<Backend> create_cuda_backend(int device);

// Number of CUDA devices; 0 (never a throw) when there is no driver or no GPU.
int cuda_device_count();

// Decode steps replayed as a CUDA graph so far by this backend (0 for a backend that is not CUDA). Set
// FKV_CUDA_GRAPH=0 to run every op eagerly.
int cuda_graph_replays(const Backend& backend);
// Ops that the captured decode graphs of this backend run fused with their neighbours (FKV_CUDA_FUSE=0: none).
int cuda_fused_ops(const Backend& backend);
// Launches of captured decode graphs that run the q/k/v matvecs with their RoPE and KV-cache store folded in
// (FKV_CUDA_ROPE_FOLD=0: none).
int cuda_rope_folds(const Backend& backend);
// Graph replays launched at a step's first op (Backend::begin_step; FKV_CUDA_EARLY_REPLAY=0: none), including
// those whose step then stopped matching and ran eagerly after them.
int cuda_early_launches(const Backend& backend);

}  // namespace fkv
