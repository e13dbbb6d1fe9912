// A device allocation behind fkv's DeviceBuffer, and the device scratch that ops grow on demand.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "backend/backend.h"

namespace fkv::cuda {

class CudaBuffer : public DeviceBuffer {
 public:
  // Throws kOutOfMemory naming `what` (with the bytes asked for and the bytes free).
  CudaBuffer(size_t bytes, const std::string& what);
  ~CudaBuffer() override;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  void* data() const { return ptr_; }
  // How the bytes of a weight uploaded with upload_weight are arranged (cuda_kernels.h WeightLayout).
  int32_t layout() const { return layout_; }
  void set_layout(int32_t layout) { layout_ = layout; }

 private:
  void* ptr_ = nullptr;
  int32_t layout_ = 0;
};

inline void* dev(const DeviceBuffer& b) { return static_cast<const CudaBuffer&>(b).data(); }
inline float* dev_f(const DeviceBuffer& b) { return static_cast<float*>(dev(b)); }

// A device buffer that only grows. Growing frees the old block, so callers synchronize first (the backend's
// one stream orders it) and anything holding the old address (a captured graph) must be dropped:
// generation() counts reallocations.
class Scratch {
 public:
  explicit Scratch(std::string what) : what_(std::move(what)) {}
  ~Scratch();
  void* get(size_t bytes, cudaStream_t stream);
  bool fits(size_t bytes) const { return ptr_ && bytes <= bytes_; }
  size_t generation() const { return generation_; }

 private:
  std::string what_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  size_t generation_ = 0;
};

}  // namespace fkv::cuda
