// Compute pipelines, created on first use from the embedded SPIR-V and cached by (shader, specialization
// constants). Every specialization constant a shader declares is passed explicitly, ids 0..n-1 in order:
// shader defaults are never relied on (one driver has been seen to get them wrong).
#pragma once
#include <vulkan/vulkan.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/vulkan/vulkan_context.h"

namespace fkv {

// Every pipeline has one descriptor set of storage buffers (bindings 0..n_bindings-1) and a push-constant
// range of kPushConstantBytes.
constexpr uint32_t kPushConstantBytes = 128;

struct Pipeline {
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  uint32_t n_bindings = 0;
  std::string name;  // the shader's (its file name without .comp), for errors and the GPU profile
};

class PipelineCache {
 public:
  explicit PipelineCache(std::shared_ptr<VulkanContext> ctx) : ctx_(std::move(ctx)) {}
  ~PipelineCache();
  PipelineCache(const PipelineCache&) = delete;
  PipelineCache& operator=(const PipelineCache&) = delete;

  // spec[k] is the value of constant_id k (uint32, bools as 0/1); spec[0] is the workgroup size.
  const Pipeline& get(const std::string& shader, const std::vector<uint32_t>& spec, uint32_t n_bindings);

 private:
  VkDescriptorSetLayout set_layout(uint32_t n_bindings);
  void print_statistics(VkPipeline pipeline, const std::string& what);

  std::shared_ptr<VulkanContext> ctx_;
  std::map<uint32_t, VkDescriptorSetLayout> set_layouts_;
  std::map<uint32_t, VkPipelineLayout> layouts_;
  std::map<std::string, VkShaderModule> modules_;
  std::map<std::pair<std::string, std::vector<uint32_t>>, Pipeline> pipelines_;
};

}  // namespace fkv
