#include "cuda_check.h"

namespace fkv::cuda {

static std::string call_name(const char* call) {
  // "cudaMemcpyAsync(dst, ...)" -> "cudaMemcpyAsync"
  std::string s(call);
  const size_t paren = s.find('(');
  return paren == std::string::npos ? s : s.substr(0, paren);
}

void check(cudaError_t status, const char* call, const std::string& what) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a sticky-free error so that later calls are not reported for it
  const ErrorCode code = status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kBackend;
  throw Error(code, call_name(call) + " failed: " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                        ") while " + what);
}

void check(cublasStatus_t status, const char* call, const std::string& what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const ErrorCode code = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::kOutOfMemory : ErrorCode::kBackend;
  throw Error(code, call_name(call) + " failed: " + cublasGetStatusName(status) + " (" +
                        cublasGetStatusString(status) + ") while " + what);
}

void check_launch(const char* kernel) {
  check(cudaGetLastError(), "cudaLaunchKernel", std::string("launching ") + kernel);
}

}  // namespace fkv::cuda
