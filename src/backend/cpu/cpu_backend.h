// The CPU reference backend: plain fp32 loops, threaded over output rows / heads. The ground truth that
// every other backend is tested against.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace fkv {

std::unique_ptr<Backend> create_cpu_backend(int n_threads);

// CPU buffers are host memory; other code that knows it holds a CPU buffer may read it directly.
float* cpu_buffer_floats(DeviceBuffer& buf);

}  // namespace fkv
