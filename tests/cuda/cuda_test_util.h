// Shared by the CUDA op tests: a CPU and a CUDA backend side by side, random inputs uploaded to both,
// NaN-poisoned outputs, and the relative error ||got - want|| / ||want||.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "cuda_backend.h"
#include "util/error.h"

namespace fkv::test {

class CudaOpTest : public ::testing::Test {
 public:  // the free helpers of each test file use these too
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: the cuda tests run on an NVIDIA machine";
    cpu = create_cpu_backend(0);
    gpu = create_cuda_backend(-1);
  }

  std::vector<float> random_floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  }

  // The same bytes on both backends.
  struct Pair {
    BufferPtr c, g;
  };
  Pair both(const void* data, size_t bytes, const char* what = "test input") {
    Pair p{cpu->alloc(bytes, what), gpu->alloc(bytes, what)};
    if (bytes) {
      cpu->upload(*p.c, 0, data, bytes);
      gpu->upload(*p.g, 0, data, bytes);
    }
    return p;
  }
  template <class T>
  Pair both(const std::vector<T>& v) {
    return both(v.data(), v.size() * sizeof(T));
  }
  // A weight matrix's GGUF bytes uploaded as the model loader does (upload_weight: the CUDA backend may repack
  // them); returns the weights of both sides.
  struct WeightPair {
    Pair buf;
    Weight c, g;
  };
  WeightPair weights(const std::vector<uint8_t>& bytes, GgmlType type, int64_t rows, int64_t cols) {
    WeightPair p{{cpu->alloc(bytes.size(), "test weight"), gpu->alloc(bytes.size(), "test weight")}, {}, {}};
    p.c = Weight{p.buf.c.get(), type, rows, cols};
    p.g = Weight{p.buf.g.get(), type, rows, cols};
    cpu->upload_weight(p.c, bytes.data(), bytes.size());
    gpu->upload_weight(p.g, bytes.data(), bytes.size());
    return p;
  }
  // An output buffer of n floats filled with NaN on both sides, so that an element an op fails to write shows.
  Pair poisoned(size_t n) { return both(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN())); }

  std::vector<float> read(Backend& b, const DeviceBuffer& buf, size_t n) {
    std::vector<float> v(n);
    b.download(buf, 0, v.data(), n * sizeof(float));
    return v;
  }
  std::vector<float> read_cpu(const Pair& p, size_t n) { return read(*cpu, *p.c, n); }
  std::vector<float> read_gpu(const Pair& p, size_t n) { return read(*gpu, *p.g, n); }

  // Relative L2 error; infinity when any value is not finite.
  static double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (!std::isfinite(got[i]) || !std::isfinite(want[i])) return std::numeric_limits<double>::infinity();
      num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      den += double(want[i]) * want[i];
    }
    return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
  }

  std::mt19937 rng{12345};
  std::unique_ptr<Backend> cpu, gpu;
};

}  // namespace fkv::test
