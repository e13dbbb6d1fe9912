// Turning CUDA and cuBLAS status codes into fkv::Error, so that no call's failure goes unnoticed.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "util/error.h"

namespace fkv::cuda {

// Throws Error(kBackend, "<call> failed: <text> while <what>"); kOutOfMemory for cudaErrorMemoryAllocation.
void check(cudaError_t status, const char* call, const std::string& what);
void check(cublasStatus_t status, const char* call, const std::string& what);
// After a kernel launch: launch-configuration errors show up here, execution errors at the next sync.
void check_launch(const char* kernel);

}  // namespace fkv::cuda

// CUDA_CHECK(cudaMemcpyAsync(...), "uploading weights"): the call's text goes into the message.
#define FKV_CUDA_CHECK(call, what) ::fkv::cuda::check((call), #call, (what))
