#include "backend/registry.h"

#include "backend/cpu/cpu_backend.h"
#include "util/error.h"

#ifdef FKV_HAVE_VULKAN
#include "backend/vulkan/vulkan_backend.h"
#endif
#ifdef FKV_HAVE_CUDA
#include "cuda_backend.h"
#endif

namespace fkv {

std::vector<std::string> compiled_backends() {
  std::vector<std::string> names{"cpu"};
#ifdef FKV_HAVE_VULKAN
  names.push_back("vulkan");
#endif
#ifdef FKV_HAVE_CUDA
  names.push_back("cuda");
#endif
  return names;
}

std::unique_ptr<Backend> create_backend(const BackendOptions& o) {
  if (o.name == "cpu") return create_cpu_backend(o.threads);
  if (o.name == "vulkan") {
#ifdef FKV_HAVE_VULKAN
    return create_vulkan_backend(o.device);
#else
    throw Error(ErrorCode::kUnsupported, "this build has no Vulkan backend (configure with -DFKV_VULKAN=ON)");
#endif
  }
  if (o.name == "cuda") {
#ifdef FKV_HAVE_CUDA
    return create_cuda_backend(o.device);
#else
    throw Error(ErrorCode::kUnsupported, "this build has no CUDA backend (configure with -DFKV_CUDA=ON)");
#endif
  }
  if (o.name == "auto") {
#ifdef FKV_HAVE_VULKAN
    // Prefer a real GPU; a CPU-type Vulkan device (lavapipe) is slower than the CPU backend.
    if (vulkan_has_gpu()) return create_vulkan_backend(o.device);
#endif
#ifdef FKV_HAVE_CUDA
    if (cuda_device_count() > 0) return create_cuda_backend(o.device);
#endif
    return create_cpu_backend(o.threads);
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown backend '" + o.name + "' (expected cpu, vulkan, cuda or auto)");
}

}  // namespace fkv
