// Programmatic dependent launch (Hopper, sm_90 and later). A kernel launched with the programmatic
// stream-serialization attribute (launch_programmatic in matvec.cu) may start while the kernel before it in
// the stream is still running: it can issue loads of data nobody writes (weights) first, and must call
// pdl_wait() before it reads what earlier kernels wrote or writes anything they read. pdl_wait() returns once
// the earlier kernels have completed and their writes are visible. pdl_allow_dependents() lets such a next
// kernel start now rather than when this one ends. On older GPUs (and without the attribute) both are no-ops.
#pragma once

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

}  // namespace fkv::cuda
