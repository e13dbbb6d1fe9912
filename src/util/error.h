// fkv::Error: the one exception type the library throws. The C API turns it into a status code.
#pragma once
#include <stdexcept>
#include <string>

namespace fkv {

enum class ErrorCode {
  kInvalidArgument = 1,  // a caller passed something out of range
  kBadFile,              // a file is truncated, malformed or hostile
  kUnsupported,          // valid input this build cannot handle (unknown quant type, architecture)
  kOutOfMemory,          // host or device allocation failed
  kBackend,              // a driver call failed (Vulkan, CUDA)
  kIo,                   // open/read/mmap failed
  kContextFull,          // the session would exceed its context length
  kCancelled,            // a progress callback asked to stop
  kInternal,             // a bug: an invariant the library itself broke
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(code, message) when cond is false. For checks on input data, never for asserts.
inline void require(bool cond, ErrorCode code, const std::string& message) {
  if (!cond) throw Error(code, message);
}

}  // namespace fkv
