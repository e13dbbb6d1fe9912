#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_env.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/vulkan/vulkan_backend.h"
#include "backend/vulkan/vulkan_check.h"
#include "util/error.h"

namespace fkv {
namespace {

std::atomic<uint64_t> g_validation_messages{0};

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                     VkDebugUtilsMessageTypeFlagsEXT,
                                                     const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                     void*) {
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    g_validation_messages.fetch_add(1);
    std::fprintf(stderr, "fkv vulkan validation: %s\n",
                 data && data->pMessage ? data->pMessage : "(no text)");
  }
  return VK_FALSE;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

bool has_layer(const char* name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceLayerProperties(&n, nullptr) != VK_SUCCESS) return false;
  std::vector<VkLayerProperties> layers(n);
  if (vkEnumerateInstanceLayerProperties(&n, layers.data()) != VK_SUCCESS) return false;
  for (const auto& l : layers)
    if (std::strcmp(l.layerName, name) == 0) return true;
  return false;
}

// A bare instance (no layers) for device queries that must not throw.
VkInstance create_query_instance() {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "fkv";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ci.pApplicationInfo = &app;
  VkInstance instance = VK_NULL_HANDLE;
  if (vkCreateInstance(&ci, nullptr, &instance) != VK_SUCCESS) return VK_NULL_HANDLE;
  return instance;
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
  uint32_t n = 0;
  if (vkEnumeratePhysicalDevices(instance, &n, nullptr) != VK_SUCCESS) return {};
  std::vector<VkPhysicalDevice> devices(n);
  if (vkEnumeratePhysicalDevices(instance, &n, devices.data()) != VK_SUCCESS) return {};
  devices.resize(n);
  return devices;
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 1;
    default:
      return 0;
  }
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "CPU";
    default:
      return "other";
  }
}

// The first queue family with compute, or -1.
int compute_family(VkPhysicalDevice d) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(d, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(d, &n, families.data());
  for (uint32_t i = 0; i < n; ++i)
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return int(i);
  return -1;
}

bool has_device_extension(VkPhysicalDevice d, const char* name) {
  uint32_t n = 0;
  if (vkEnumerateDeviceExtensionProperties(d, nullptr, &n, nullptr) != VK_SUCCESS) return false;
  std::vector<VkExtensionProperties> ext(n);
  if (vkEnumerateDeviceExtensionProperties(d, nullptr, &n, ext.data()) != VK_SUCCESS) return false;
  for (const auto& e : ext)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

}  // namespace

uint64_t vulkan_validation_message_count() {
  return g_validation_messages.load();
}

bool vulkan_has_gpu() {
  static const bool result = [] {
    VkInstance instance = create_query_instance();
    if (!instance) return false;
    bool gpu = false;
    for (VkPhysicalDevice d : physical_devices(instance)) {
      VkPhysicalDeviceProperties p;
      vkGetPhysicalDeviceProperties(d, &p);
      if (p.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU && compute_family(d) >= 0) gpu = true;
    }
    vkDestroyInstance(instance, nullptr);
    return gpu;
  }();
  return result;
}

std::vector<std::string> vulkan_list_devices() {
  std::vector<std::string> lines;
  VkInstance instance = create_query_instance();
  if (!instance) return lines;
  const auto devices = physical_devices(instance);
  for (size_t i = 0; i < devices.size(); ++i) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(devices[i], &p);
    VkPhysicalDeviceMemoryProperties m;
    vkGetPhysicalDeviceMemoryProperties(devices[i], &m);
    VkDeviceSize local = 0;
    for (uint32_t h = 0; h < m.memoryHeapCount; ++h)
      if (m.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
        local = std::max(local, m.memoryHeaps[h].size);
    lines.push_back(std::to_string(i) + ": " + p.deviceName + " (" + type_name(p.deviceType) + ", Vulkan " +
                    std::to_string(VK_API_VERSION_MAJOR(p.apiVersion)) + "." +
                    std::to_string(VK_API_VERSION_MINOR(p.apiVersion)) + ", " + std::to_string(local >> 20) +
                    " MiB)");
  }
  vkDestroyInstance(instance, nullptr);
  return lines;
}

VulkanContext::VulkanContext(int device) {
  const bool validate = env_flag("FKV_VULKAN_VALIDATE");
  if (validate && !has_layer("VK_LAYER_KHRONOS_validation"))
    throw Error(ErrorCode::kBackend,
                "FKV_VULKAN_VALIDATE is set but VK_LAYER_KHRONOS_validation is not installed "
                "(Debian: vulkan-validationlayers)");

  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "fkv";
  app.apiVersion = VK_API_VERSION_1_1;
  const char* layers[] = {"VK_LAYER_KHRONOS_validation"};
  const char* extensions[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
  VkDebugUtilsMessengerCreateInfoEXT messenger_ci{};
  messenger_ci.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
  messenger_ci.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger_ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                             VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                             VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_ci.pfnUserCallback = on_validation_message;
  VkInstanceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ci.pApplicationInfo = &app;
  if (validate) {
    ci.enabledLayerCount = 1;
    ci.ppEnabledLayerNames = layers;
    ci.enabledExtensionCount = 1;
    ci.ppEnabledExtensionNames = extensions;
    ci.pNext = &messenger_ci;  // also reports problems in instance creation and destruction
  }
  const VkResult r = vkCreateInstance(&ci, nullptr, &instance_);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
    throw Error(ErrorCode::kBackend,
                "no Vulkan driver found (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER)");
  vk_check(r, "vkCreateInstance", "starting Vulkan");

  try {
    if (validate) {
      auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
      require(create != nullptr, ErrorCode::kBackend, "vkCreateDebugUtilsMessengerEXT is missing");
      vk_check(create(instance_, &messenger_ci, nullptr, &messenger_), "vkCreateDebugUtilsMessengerEXT",
               "installing the validation message hook");
    }

    const auto devices = physical_devices(instance_);
    require(!devices.empty(), ErrorCode::kBackend, "the Vulkan driver reports no devices");
    if (device < 0) {
      const char* env = std::getenv("FKV_VULKAN_DEVICE");
      if (env && *env) {
        char* end = nullptr;
        const long v = std::strtol(env, &end, 10);
        require(end && *end == 0 && v >= 0, ErrorCode::kInvalidArgument,
                std::string("FKV_VULKAN_DEVICE='") + env + "' is not a device index");
        device = int(v);
      }
    }
    if (device >= 0) {
      require(size_t(device) < devices.size(), ErrorCode::kInvalidArgument,
              "Vulkan device " + std::to_string(device) + " does not exist (" +
                  std::to_string(devices.size()) + " found)");
      require(compute_family(devices[device]) >= 0, ErrorCode::kBackend,
              "Vulkan device " + std::to_string(device) + " has no compute queue");
      physical_ = devices[device];
    } else {
      int best = -1;
      for (VkPhysicalDevice d : devices) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(d, &p);
        if (compute_family(d) >= 0 && type_rank(p.deviceType) > best) {
          best = type_rank(p.deviceType);
          physical_ = d;
        }
      }
      require(physical_ != VK_NULL_HANDLE, ErrorCode::kBackend, "no Vulkan device has a compute queue");
    }
    vkGetPhysicalDeviceProperties(physical_, &props_);
    vkGetPhysicalDeviceMemoryProperties(physical_, &mem_props_);
    require(VK_API_VERSION_MINOR(props_.apiVersion) >= 1 || VK_API_VERSION_MAJOR(props_.apiVersion) > 1,
            ErrorCode::kBackend,
            std::string("Vulkan device ") + props_.deviceName + " supports only Vulkan 1.0");
    queue_family_ = uint32_t(compute_family(physical_));
    {
      uint32_t n = 0;
      vkGetPhysicalDeviceQueueFamilyProperties(physical_, &n, nullptr);
      std::vector<VkQueueFamilyProperties> families(n);
      vkGetPhysicalDeviceQueueFamilyProperties(physical_, &n, families.data());
      timestamp_bits_ = families[queue_family_].timestampValidBits;
    }

    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci{};
    qci.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    qci.queueFamilyIndex = queue_family_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    std::vector<const char*> device_ext;
    const bool push = has_device_extension(physical_, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    if (push) device_ext.push_back(VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    // Pipeline statistics (a tuning aid, off by default: capturing them may slow pipeline creation).
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR exec_features{};
    exec_features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR;
    bool stats = env_switch("FKV_VULKAN_PIPELINE_STATS", false) &&
                 has_device_extension(physical_, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    if (stats) {  // the extension listed is not enough: the feature must be there too
      VkPhysicalDeviceFeatures2 f2{};
      f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
      f2.pNext = &exec_features;
      vkGetPhysicalDeviceFeatures2(physical_, &f2);
      stats = exec_features.pipelineExecutableInfo == VK_TRUE;
      exec_features.pNext = nullptr;
    }
    if (stats) device_ext.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    // 64-bit integer atomics on buffers (VK_KHR_shader_atomic_int64 and shaderInt64): the decode matvec that
    // folds the residual add and the RMSNorm's sum of squares adds its partial sums as fixed-point integers,
    // so that the total is the same whatever order workgroups finish in (vulkan_backend.cpp "norm fold").
    if (has_device_extension(physical_, VK_KHR_SHADER_ATOMIC_INT64_EXTENSION_NAME)) {
      VkPhysicalDeviceShaderAtomicInt64FeaturesKHR has64{};
      has64.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_INT64_FEATURES_KHR;
      VkPhysicalDeviceFeatures2 has{};
      has.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
      has.pNext = &has64;
      vkGetPhysicalDeviceFeatures2(physical_, &has);
      int64_atomics_ = has.features.shaderInt64 == VK_TRUE && has64.shaderBufferInt64Atomics == VK_TRUE;
    }
    // Only these two features are enabled (no other core feature changes).
    VkPhysicalDeviceShaderAtomicInt64FeaturesKHR atomic64{};
    atomic64.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_INT64_FEATURES_KHR;
    atomic64.shaderBufferInt64Atomics = VK_TRUE;
    atomic64.pNext = stats ? &exec_features : nullptr;
    VkPhysicalDeviceFeatures2 features2{};
    features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    features2.features.shaderInt64 = VK_TRUE;
    features2.pNext = &atomic64;
    if (int64_atomics_) device_ext.push_back(VK_KHR_SHADER_ATOMIC_INT64_EXTENSION_NAME);
    VkDeviceCreateInfo dci{};
    dci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
    if (int64_atomics_)
      dci.pNext = &features2;
    else if (stats)
      dci.pNext = &exec_features;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    dci.enabledExtensionCount = uint32_t(device_ext.size());
    dci.ppEnabledExtensionNames = device_ext.data();
    vk_check(vkCreateDevice(physical_, &dci, nullptr, &device_), "vkCreateDevice",
             std::string("opening ") + props_.deviceName);
    vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
    if (push)
      push_descriptor_ = reinterpret_cast<PFN_vkCmdPushDescriptorSetKHR>(
          vkGetDeviceProcAddr(device_, "vkCmdPushDescriptorSetKHR"));
    if (stats) {
      executable_properties_ = reinterpret_cast<PFN_vkGetPipelineExecutablePropertiesKHR>(
          vkGetDeviceProcAddr(device_, "vkGetPipelineExecutablePropertiesKHR"));
      executable_statistics_ = reinterpret_cast<PFN_vkGetPipelineExecutableStatisticsKHR>(
          vkGetDeviceProcAddr(device_, "vkGetPipelineExecutableStatisticsKHR"));
      if (!executable_properties_ || !executable_statistics_) executable_properties_ = nullptr;
    }

    VkPhysicalDeviceSubgroupProperties sub{};
    sub.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceProperties2 props2{};
    props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    props2.pNext = &sub;
    vkGetPhysicalDeviceProperties2(physical_, &props2);
    const VkSubgroupFeatureFlags ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    const char* sub_env = std::getenv("FKV_VULKAN_SUBGROUP");
    subgroup_arithmetic_ = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
                           (sub.supportedOperations & ops) == ops &&
                           !(sub_env && std::string(sub_env) == "0");

    binding_alignment_ = std::max<VkDeviceSize>(props_.limits.minStorageBufferOffsetAlignment, 4);
    max_binding_ = std::min<VkDeviceSize>(props_.limits.maxStorageBufferRange, VkDeviceSize(1) << 30);
    max_binding_ -= max_binding_ % binding_alignment_;
  } catch (...) {
    if (device_) vkDestroyDevice(device_, nullptr);
    if (messenger_) {
      auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
      if (destroy) destroy(instance_, messenger_, nullptr);
    }
    vkDestroyInstance(instance_, nullptr);
    throw;
  }
}

void VulkanContext::retire(VkBuffer buffer, VkDeviceMemory memory) {
  std::lock_guard<std::mutex> lock(garbage_mutex_);
  garbage_.emplace_back(buffer, memory);
}

bool VulkanContext::retired(VkBuffer buffer) {
  std::lock_guard<std::mutex> lock(garbage_mutex_);
  for (const auto& [b, memory] : garbage_)
    if (b == buffer) return true;
  return false;
}

void VulkanContext::collect_garbage() {
  std::lock_guard<std::mutex> lock(garbage_mutex_);
  for (auto& [buffer, memory] : garbage_) {
    vkDestroyBuffer(device_, buffer, nullptr);
    vkFreeMemory(device_, memory, nullptr);
  }
  garbage_.clear();
}

VulkanContext::~VulkanContext() {
  vkDeviceWaitIdle(device_);
  collect_garbage();
  vkDestroyDevice(device_, nullptr);
  if (messenger_) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy) destroy(instance_, messenger_, nullptr);
  }
  vkDestroyInstance(instance_, nullptr);
}

}  // namespace fkv
