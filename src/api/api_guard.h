// The C API's boundary: every exported function runs its body inside guard(), which turns exceptions
// into an fkv_status and records the text for fkv_last_error(). Nothing thrown inside the library
// crosses into C.
#pragma once
#include <exception>
#include <new>
#include <string>

#include "fkv.h"
#include "util/error.h"

namespace fkv::api {

void set_last_error(const char* text) noexcept;
void clear_last_error() noexcept;
fkv_status status_from(ErrorCode code) noexcept;

// Throws kInvalidArgument "<what> is NULL" when p is null.
inline void require_ptr(const void* p, const char* what) {
  if (!p) throw Error(ErrorCode::kInvalidArgument, std::string(what) + " is NULL");
}

// A failure that is not an exception (FKV_ERR_BUFFER_TOO_SMALL): record the text, return the status.
fkv_status fail(fkv_status status, const std::string& text) noexcept;

// Runs body (returning fkv_status); on success clears the last error, on an exception records
// "<function>: <message>" and returns the matching status.
template <class Body>
fkv_status guard(const char* function, Body&& body) noexcept {
  try {
    const fkv_status s = body();
    if (s == FKV_OK) clear_last_error();
    return s;
  } catch (const Error& e) {
    set_last_error((std::string(function) + ": " + e.what()).c_str());
    return status_from(e.code());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return FKV_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    try {
      set_last_error((std::string(function) + ": internal error: " + e.what()).c_str());
    } catch (...) {
      set_last_error("internal error");
    }
    return FKV_ERR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return FKV_ERR_INTERNAL;
  }
}

}  // namespace fkv::api
