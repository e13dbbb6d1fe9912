#include "cuda_buffer.h"

#include "cuda_check.h"

namespace fkv::cuda {

static void* device_alloc(size_t bytes, const std::string& what) {
  void* p = nullptr;
  const cudaError_t st = cudaMalloc(&p, bytes ? bytes : 1);
  if (st == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    throw Error(ErrorCode::kOutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes of GPU memory for " +
                                             what + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                                             std::to_string(total_b >> 20) + " MiB)");
  }
  check(st, "cudaMalloc", "allocating " + std::to_string(bytes) + " bytes for " + what);
  return p;
}

CudaBuffer::CudaBuffer(size_t bytes, const std::string& what) : DeviceBuffer(bytes), ptr_(device_alloc(bytes, what)) {}

// Destructors cannot throw; a failing cudaFree at teardown (driver shutting down) is not actionable.
CudaBuffer::~CudaBuffer() { (void)cudaFree(ptr_); }

Scratch::~Scratch() { (void)cudaFree(ptr_); }

void* Scratch::get(size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_ && ptr_) return ptr_;
  FKV_CUDA_CHECK(cudaStreamSynchronize(stream), "waiting for the GPU before growing " + what_);
  FKV_CUDA_CHECK(cudaFree(ptr_), "freeing " + what_);
  ptr_ = nullptr;
  bytes_ = 0;
  const size_t grown = bytes + bytes / 4;  // some headroom: a longer sequence next time should not realloc
  ptr_ = device_alloc(grown, what_);
  bytes_ = grown;
  ++generation_;
  return ptr_;
}

}  // namespace fkv::cuda
