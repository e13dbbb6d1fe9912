// Device selection and failures: a missing device and an impossible allocation are fkv::Errors with text
// that says what went wrong.
#include <cstring>

#include "cuda_kernels.h"
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

// The decode matvecs keep everything in registers: an 80-byte local-memory frame (a kernel parameter indexed
// at run time) once cost them 2-4 us a launch, seen only in ptxas's report (docs/CUDA.md, ba4173c).
TEST_F(CudaDeviceOps, DecodeMatvecsUseNoLocalMemory) { EXPECT_EQ(cuda::decode_matvec_local_bytes(), 0u); }

TEST_F(CudaDeviceOps, BadDeviceIndex) {
  EXPECT_THROW(create_cuda_backend(cuda_device_count() + 3), Error);
}

// Read-backs of every size class: through the pinned buffer in one piece or several (64 KB pieces at the
// least, 4 at the most; the sizes straddle those edges) and straight to the caller past 16 MiB, at offsets,
// into memory poisoned before each read.
TEST_F(CudaDeviceOps, DownloadsEverySizeExactly) {
  const size_t total = (size_t(16) << 20) + 4096;
  std::vector<uint8_t> bytes(total);
  for (size_t i = 0; i < total; ++i) bytes[i] = uint8_t(rng() >> 7);
  auto buf = gpu->alloc(total, "download test");
  gpu->upload(*buf, 0, bytes.data(), total);
  for (size_t n : {size_t(1), size_t(65535), size_t(65536), size_t(65537), size_t(3 * 65536 + 1),
                   size_t(128256 * 4), size_t(16) << 20, (size_t(16) << 20) + 1}) {
    for (size_t offset : {size_t(0), size_t(3)}) {
      if (offset + n > total) continue;
      std::vector<uint8_t> got(n, 0xA5);
      gpu->download(*buf, offset, got.data(), n);
      EXPECT_EQ(0, std::memcmp(got.data(), bytes.data() + offset, n)) << n << " bytes at " << offset;
    }
  }
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
