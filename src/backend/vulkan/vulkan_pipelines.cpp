#include "backend/vulkan/vulkan_pipelines.h"

#include <cstdio>

#include "backend/vulkan/vulkan_check.h"
#include "backend/vulkan/vulkan_shaders.h"
#include "util/error.h"

namespace fkv {

const EmbeddedShader& find_shader(const std::string& name) {
  for (const auto& s : embedded_shaders())
    if (name == s.name) return s;
  throw Error(ErrorCode::kInternal, "no embedded shader named " + name);
}

VkDescriptorSetLayout PipelineCache::set_layout(uint32_t n) {
  auto it = set_layouts_.find(n);
  if (it != set_layouts_.end()) return it->second;
  std::vector<VkDescriptorSetLayoutBinding> bindings(n);
  for (uint32_t i = 0; i < n; ++i) {
    bindings[i].binding = i;
    bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[i].descriptorCount = 1;
    bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  if (ctx_->push_descriptor_fn()) ci.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR;
  ci.bindingCount = n;
  ci.pBindings = bindings.data();
  VkDescriptorSetLayout layout;
  vk_check(vkCreateDescriptorSetLayout(ctx_->device(), &ci, nullptr, &layout), "vkCreateDescriptorSetLayout",
           "creating a layout of " + std::to_string(n) + " storage buffers");
  set_layouts_[n] = layout;

  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes};
  VkPipelineLayoutCreateInfo lci{};
  lci.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  lci.setLayoutCount = 1;
  lci.pSetLayouts = &layout;
  lci.pushConstantRangeCount = 1;
  lci.pPushConstantRanges = &range;
  VkPipelineLayout pl;
  vk_check(vkCreatePipelineLayout(ctx_->device(), &lci, nullptr, &pl), "vkCreatePipelineLayout",
           "creating a pipeline layout");
  layouts_[n] = pl;
  return layout;
}

const Pipeline& PipelineCache::get(const std::string& shader, const std::vector<uint32_t>& spec,
                                   uint32_t n_bindings) {
  auto key = std::make_pair(shader, spec);
  auto it = pipelines_.find(key);
  if (it != pipelines_.end()) return it->second;

  VkShaderModule module;
  auto mit = modules_.find(shader);
  if (mit != modules_.end()) {
    module = mit->second;
  } else {
    const EmbeddedShader& s = find_shader(shader);
    VkShaderModuleCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
    ci.codeSize = s.n_words * 4;
    ci.pCode = s.words;
    vk_check(vkCreateShaderModule(ctx_->device(), &ci, nullptr, &module), "vkCreateShaderModule",
             "loading shader " + shader);
    modules_[shader] = module;
  }

  Pipeline p;
  p.n_bindings = n_bindings;
  p.name = shader;
  p.set_layout = set_layout(n_bindings);
  p.layout = layouts_.at(n_bindings);
  std::vector<VkSpecializationMapEntry> entries(spec.size());
  for (size_t i = 0; i < spec.size(); ++i) entries[i] = {uint32_t(i), uint32_t(i * 4), 4};
  VkSpecializationInfo si{uint32_t(entries.size()), entries.data(), spec.size() * 4, spec.data()};
  VkComputePipelineCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = module;
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = &si;
  ci.layout = p.layout;
  std::string what = shader + " (specialization";
  for (uint32_t v : spec) what.append(1, ' ').append(std::to_string(v));
  what += ")";
  if (ctx_->executable_properties_fn()) ci.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
  vk_check(vkCreateComputePipelines(ctx_->device(), VK_NULL_HANDLE, 1, &ci, nullptr, &p.pipeline),
           "vkCreateComputePipelines", "creating the pipeline of " + what);
  if (ctx_->executable_properties_fn()) print_statistics(p.pipeline, what);
  return pipelines_[key] = p;
}

namespace {

// A driver query of the two-call kind (count, then the entries, each with its sType set); empty on failure.
template <class T, class Query>
std::vector<T> query_all(VkStructureType type, Query query) {
  uint32_t n = 0;
  if (query(&n, nullptr) != VK_SUCCESS) return {};
  std::vector<T> out(n);
  for (T& e : out) e.sType = type;
  if (query(&n, out.data()) != VK_SUCCESS) return {};
  out.resize(n);
  return out;
}

}  // namespace

// One stderr line per executable of the pipeline: "pipeline stats: <shader> (specialization ...)
// <executable>: <statistic> <value>, ...", in the driver's own names and units (docs/VULKAN.md "Pipeline
// statistics").
void PipelineCache::print_statistics(VkPipeline pipeline, const std::string& what) {
  VkDevice dev = ctx_->device();
  VkPipelineInfoKHR info{};
  info.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR;
  info.pipeline = pipeline;
  const auto execs = query_all<VkPipelineExecutablePropertiesKHR>(
      VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR,
      [&](uint32_t* n, VkPipelineExecutablePropertiesKHR* e) {
        return ctx_->executable_properties_fn()(dev, &info, n, e);
      });
  for (uint32_t i = 0; i < execs.size(); ++i) {
    VkPipelineExecutableInfoKHR ei{};
    ei.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR;
    ei.pipeline = pipeline;
    ei.executableIndex = i;
    const auto stats = query_all<VkPipelineExecutableStatisticKHR>(
        VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR,
        [&](uint32_t* n, VkPipelineExecutableStatisticKHR* st) {
          return ctx_->executable_statistics_fn()(dev, &ei, n, st);
        });
    if (stats.empty()) continue;
    std::string line = "pipeline stats: " + what + " " + execs[i].name + ":";
    for (size_t k = 0; k < stats.size(); ++k) {
      const VkPipelineExecutableStatisticKHR& st = stats[k];
      line += (k ? ", " : " ") + std::string(st.name) + " ";
      switch (st.format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
          line += st.value.b32 ? "true" : "false";
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
          line += std::to_string(st.value.i64);
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
          line += std::to_string(st.value.u64);
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR:
          line += std::to_string(st.value.f64);
          break;
        default:
          line += "?";
      }
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

PipelineCache::~PipelineCache() {
  VkDevice dev = ctx_->device();
  for (auto& [key, p] : pipelines_) vkDestroyPipeline(dev, p.pipeline, nullptr);
  for (auto& [key, m] : modules_) vkDestroyShaderModule(dev, m, nullptr);
  for (auto& [key, l] : layouts_) vkDestroyPipelineLayout(dev, l, nullptr);
  for (auto& [key, l] : set_layouts_) vkDestroyDescriptorSetLayout(dev, l, nullptr);
}

}  // namespace fkv
