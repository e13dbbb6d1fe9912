// Environment knobs of the Vulkan backend (bisecting and tuning on a GPU), each documented where it is read.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace fkv {

// A switch: unset -> fallback, "0" -> off, anything else -> on.
inline bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  return v ? std::strcmp(v, "0") != 0 : fallback;
}

// A positive count overriding `fallback`; unset, zero, negative or not a number keeps the fallback.
inline uint32_t env_count(const char* name, uint32_t fallback) {
  const char* v = std::getenv(name);
  const long n = v ? std::strtol(v, nullptr, 10) : 0;
  return n > 0 ? uint32_t(n) : fallback;
}

}  // namespace fkv
