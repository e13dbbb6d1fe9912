// Device discovery, error paths, and the embedded shaders' validity.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backend/vulkan/vulkan_shaders.h"
#include "util/error.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

TEST(VulkanContext, ListsDevicesWithoutThrowing) {
  const auto devices = vulkan_list_devices();
  ASSERT_FALSE(devices.empty()) << "no Vulkan device (lavapipe: mesa-vulkan-drivers)";
  for (const auto& d : devices) std::printf("%s\n", d.c_str());
  (void)vulkan_has_gpu();
}

TEST(VulkanContext, BadDeviceIndexIsAnError) {
  EXPECT_THROW(create_vulkan_backend(1000), Error);
}

TEST_F(VulkanTest, ReportsItsDevice) {
  EXPECT_EQ(vk->name(), "vulkan");
  EXPECT_FALSE(vk->device_name().empty());
}

TEST_F(VulkanTest, HugeAllocationIsOutOfMemory) {
  try {
    vk->alloc(size_t(1) << 50, "a test tensor");
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
    EXPECT_NE(std::string(e.what()).find("a test tensor"), std::string::npos) << e.what();
  }
}

TEST(VulkanShaders, EverySpirvModuleValidates) {
#ifndef FKV_SPIRV_VAL
  GTEST_SKIP() << "spirv-val was not found at configure time (Debian: spirv-tools)";
#else
  ASSERT_FALSE(embedded_shaders().empty());
  const auto dir = std::filesystem::temp_directory_path() / ("fkv-spv-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  for (const auto& s : embedded_shaders()) {
    const auto path = dir / (std::string(s.name) + ".spv");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(s.words), std::streamsize(s.n_words * 4));
    std::string cmd = FKV_SPIRV_VAL;
    cmd.append(" --target-env vulkan1.1 ").append(path.string());
    EXPECT_EQ(std::system(cmd.c_str()), 0) << s.name;
  }
  std::filesystem::remove_all(dir);
#endif
}

}  // namespace
}  // namespace fkv::test
