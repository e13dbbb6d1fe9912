// Programmatic dependent launch (Hopper, sm_90 and later). A kernel launched with the programmatic
// stream-serialization attribute (launch_programmatic below) may start while the kernel before it in the
// stream is still running: it can issue loads of data nobody writes (weights) first, and must call
// pdl_wait() before it reads what earlier kernels wrote or writes anything they read. pdl_wait() returns once
// the earlier kernels have completed and their writes are visible. pdl_allow_dependents() lets such a next
// kernel start now rather than when this one ends. On older GPUs (and without the attribute) both are no-ops.
#pragma once
#include <cuda_runtime.h>

#include <atomic>

#include "cuda_check.h"

namespace fkv::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_allow_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Process-wide switches, set by the backend (set_programmatic_launch): whether programmatic launches are
// used at all, and whether the decode chain is programmatic through the add + RMSNorm launches between the
// matvecs too, with the Q4_0x8 matvec letting them launch at its beginning, so that the next matvec's blocks
// take the multiprocessors as this one's blocks retire and load their first weights meanwhile.
inline std::atomic<bool>& programmatic_flag() {
  static std::atomic<bool> on{false};
  return on;
}
inline std::atomic<bool>& programmatic_chain_flag() {
  static std::atomic<bool> on{false};
  return on;
}
inline bool programmatic_chain() {
  return programmatic_flag().load(std::memory_order_relaxed) &&
         programmatic_chain_flag().load(std::memory_order_relaxed);
}

#ifdef __CUDACC__  // (the host-side emulation tests include the kernels without nvcc)
// A launch that may overlap the end of the stream's previous kernel when programmatic launches are on (only
// when `chained` says the chain is wanted too); the kernel must call pdl_wait() before touching what earlier
// kernels write.
template <class K, class... Args>
void launch_programmatic(K kernel, const char* name, dim3 grid, dim3 block, cudaStream_t stream, bool chained,
                         Args... args) {
  const bool on = chained ? programmatic_chain() : programmatic_flag().load(std::memory_order_relaxed);
  if (!on) {
    kernel<<<grid, block, 0, stream>>>(args...);
    return check_launch(name);
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  check(cudaLaunchKernelEx(&cfg, kernel, args...), name, "launching a kernel");
}
#endif

}  // namespace fkv::cuda
