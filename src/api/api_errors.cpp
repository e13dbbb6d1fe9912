// Status codes, their names, and the thread-local last-error text.
#include <string>

#include "api/api_guard.h"

namespace fkv::api {

namespace {
thread_local std::string g_text;
thread_local const char* g_current = "";
}  // namespace

void set_last_error(const char* text) noexcept {
  try {
    g_text = text;
    g_current = g_text.c_str();
  } catch (...) {
    // Recording the error needed memory we do not have: say so with a constant.
    g_current = "out of host memory (while recording an error)";
  }
}

void clear_last_error() noexcept {
  g_current = "";
}

fkv_status fail(fkv_status status, const std::string& text) noexcept {
  set_last_error(text.c_str());
  return status;
}

fkv_status status_from(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return FKV_ERR_INVALID_ARGUMENT;
    case ErrorCode::kBadFile:
      return FKV_ERR_BAD_FILE;
    case ErrorCode::kUnsupported:
      return FKV_ERR_UNSUPPORTED;
    case ErrorCode::kOutOfMemory:
      return FKV_ERR_OUT_OF_MEMORY;
    case ErrorCode::kBackend:
      return FKV_ERR_BACKEND;
    case ErrorCode::kIo:
      return FKV_ERR_IO;
    case ErrorCode::kContextFull:
      return FKV_ERR_CONTEXT_FULL;
    case ErrorCode::kCancelled:
      return FKV_ERR_CANCELLED;
    case ErrorCode::kInternal:
      return FKV_ERR_INTERNAL;
  }
  return FKV_ERR_INTERNAL;
}

}  // namespace fkv::api

using namespace fkv::api;

extern "C" {

const char* fkv_last_error(void) {
  return g_current;
}

const char* fkv_status_name(fkv_status status) {
  switch (status) {
    case FKV_OK:
      return "FKV_OK";
    case FKV_ERR_INVALID_ARGUMENT:
      return "FKV_ERR_INVALID_ARGUMENT";
    case FKV_ERR_BAD_FILE:
      return "FKV_ERR_BAD_FILE";
    case FKV_ERR_UNSUPPORTED:
      return "FKV_ERR_UNSUPPORTED";
    case FKV_ERR_OUT_OF_MEMORY:
      return "FKV_ERR_OUT_OF_MEMORY";
    case FKV_ERR_BACKEND:
      return "FKV_ERR_BACKEND";
    case FKV_ERR_IO:
      return "FKV_ERR_IO";
    case FKV_ERR_CONTEXT_FULL:
      return "FKV_ERR_CONTEXT_FULL";
    case FKV_ERR_CANCELLED:
      return "FKV_ERR_CANCELLED";
    case FKV_ERR_INTERNAL:
      return "FKV_ERR_INTERNAL";
    case FKV_ERR_BUFFER_TOO_SMALL:
      return "FKV_ERR_BUFFER_TOO_SMALL";
  }
  return "unknown";
}

fkv_status fkv_api_version(uint32_t* out_version) {
  return guard(__func__, [&] {
    require_ptr(out_version, "out_version");
    *out_version = FKV_API_VERSION;
    return FKV_OK;
  });
}

}  // extern "C"
