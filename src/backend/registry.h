// Creating a backend by name, and which backends this build and machine offer.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace fkv {

struct BackendOptions {
  std::string name = "auto";  // cpu | vulkan | cuda | auto (auto: a Vulkan GPU, else CUDA, else CPU)
  int device = -1;            // -1: the backend's choice (Vulkan also reads FKV_VULKAN_DEVICE)
  int threads = 0;            // CPU threads; 0: all
};

// Throws fkv::Error(kUnsupported) when the backend is not built in, kBackend when it cannot start.
std::unique_ptr<Backend> create_backend(const BackendOptions& options);

// Backends compiled into this build ("cpu" always).
std::vector<std::string> compiled_backends();

}  // namespace fkv
