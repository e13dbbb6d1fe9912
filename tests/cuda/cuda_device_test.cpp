// Device selection and failures: a missing device and an impossible allocation are fkv::Errors with text
// that says what went wrong.
#include "cuda_test_util.h"

namespace fkv::test {
namespace {

TEST(CudaDevice, CountNeverThrows) { EXPECT_GE(cuda_device_count(), 0); }

TEST(CudaDevice, NoDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present; this checks the no-device error";
  try {
    create_cuda_backend(0);
    FAIL() << "created a CUDA backend without a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackend);
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

using CudaDeviceOps = CudaOpTest;

TEST_F(CudaDeviceOps, NamesTheDevice) {
  EXPECT_EQ(gpu->name(), "cuda");
  EXPECT_FALSE(gpu->device_name().empty());
  std::cout << "CUDA device: " << gpu->device_name() << "\n";
}

TEST_F(CudaDeviceOps, BadDeviceIndex) {
  EXPECT_THROW(create_cuda_backend(cuda_device_count() + 3), Error);
}

TEST_F(CudaDeviceOps, OutOfMemoryNamesTheAllocation) {
  try {
    gpu->alloc(size_t(1) << 50, "a petabyte of test tensor");
    FAIL() << "allocated a petabyte";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("a petabyte of test tensor"), std::string::npos) << e.what();
  }
  // The backend still works after the failure.
  auto b = both(random_floats(16));
  EXPECT_EQ(read_gpu(b, 16), read_cpu(b, 16));
}

TEST_F(CudaDeviceOps, RangeChecks) {
  auto b = gpu->alloc(64, "small");
  std::vector<float> host(32);
  EXPECT_THROW(gpu->upload(*b, 0, host.data(), 128), Error);
  EXPECT_THROW(gpu->download(*b, 60, host.data(), 8), Error);
}

}  // namespace
}  // namespace fkv::test
