#include "gguf/gguf_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "gguf/gguf_parser.h"
#include "util/error.h"

namespace fkv {

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // the parser checked that this product fits
  return n;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  require(fd >= 0, ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(ErrorCode::kIo, "cannot stat " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode) || st.st_size < 24) {
    ::close(fd);
    throw Error(
        S_ISREG(st.st_mode) ? ErrorCode::kBadFile : ErrorCode::kIo,
        path + ": not a GGUF file (" + std::to_string(st.st_size) + " bytes, too short for a header)");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  require(map != MAP_FAILED, ErrorCode::kIo, "cannot mmap " + path + ": " + std::strerror(err));
  f->base_ = static_cast<const uint8_t*>(map);
  f->size_ = size;
  GgufParser::parse(*f);  // on throw, ~GgufFile unmaps
  return f;
}

GgufFile::~GgufFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const char* wanted) {
  throw Error(ErrorCode::kBadFile, path + ": metadata key '" + key + "' is not " + wanted);
}

}  // namespace

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = std::get_if<int64_t>(&v->value)) return *s;
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    require(*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), ErrorCode::kBadFile,
            path_ + ": metadata key '" + key + "' = " + std::to_string(*u) + " is out of range");
    return static_cast<int64_t>(*u);
  }
  wrong_type(path_, key, "an integer");
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v->value)) return *d;
  if (const auto* s = std::get_if<int64_t>(&v->value)) return static_cast<double>(*s);
  if (const auto* u = std::get_if<uint64_t>(&v->value)) return static_cast<double>(*u);
  wrong_type(path_, key, "a number");
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  wrong_type(path_, key, "a string");
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  wrong_type(path_, key, "a bool");
}

const GgufArray* GgufFile::get_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v->value)) return a->get();
  wrong_type(path_, key, "an array");
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace fkv
