#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>

#include "util/error.h"

namespace fkv {

namespace {

constexpr uint64_t kAlignment = 32;

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  // resize + memcpy rather than insert: GCC 12 warns falsely (-Warray-bounds) on small vector inserts.
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  const size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}

[[noreturn]] void mismatch(GgufValueType t) {
  throw Error(ErrorCode::kInvalidArgument, "GgufValue of type " + std::to_string(static_cast<uint32_t>(t)) +
                                               " holds another kind of value");
}

template <typename T, typename V>
T get_as(const GgufValue& v) {
  const auto* p = std::get_if<V>(&v.value);
  if (!p) mismatch(v.type);
  return static_cast<T>(*p);
}

// Appends the payload of v (no type tag; arrays carry their element type and count).
void encode(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      put(out, get_as<uint8_t, uint64_t>(v));
      break;
    case GgufValueType::INT8:
      put(out, get_as<int8_t, int64_t>(v));
      break;
    case GgufValueType::UINT16:
      put(out, get_as<uint16_t, uint64_t>(v));
      break;
    case GgufValueType::INT16:
      put(out, get_as<int16_t, int64_t>(v));
      break;
    case GgufValueType::UINT32:
      put(out, get_as<uint32_t, uint64_t>(v));
      break;
    case GgufValueType::INT32:
      put(out, get_as<int32_t, int64_t>(v));
      break;
    case GgufValueType::UINT64:
      put(out, get_as<uint64_t, uint64_t>(v));
      break;
    case GgufValueType::INT64:
      put(out, get_as<int64_t, int64_t>(v));
      break;
    case GgufValueType::FLOAT32:
      put(out, get_as<float, double>(v));
      break;
    case GgufValueType::FLOAT64:
      put(out, get_as<double, double>(v));
      break;
    case GgufValueType::BOOL:
      put<uint8_t>(out, get_as<bool, bool>(v) ? 1 : 0);
      break;
    case GgufValueType::STRING: {
      const auto* s = std::get_if<std::string>(&v.value);
      if (!s) mismatch(v.type);
      put_string(out, *s);
      break;
    }
    case GgufValueType::ARRAY: {
      const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value);
      if (!a || !*a) mismatch(v.type);
      put<uint32_t>(out, static_cast<uint32_t>((*a)->elem_type));
      put<uint64_t>(out, (*a)->items.size());
      for (const GgufValue& item : (*a)->items) {
        require(item.type == (*a)->elem_type, ErrorCode::kInvalidArgument, "array item of another type");
        encode(out, item);
      }
      break;
    }
    default:
      mismatch(v.type);
  }
}

uint64_t align_up(uint64_t x) {
  return (x + kAlignment - 1) / kAlignment * kAlignment;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

}  // namespace

void GgufWriter::set_value(const std::string& key, const GgufValue& v) {
  Kv kv{key, v.type, {}};
  encode(kv.payload, v);
  kv_.push_back(std::move(kv));
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set_value(key, {GgufValueType::UINT32, uint64_t{v}});
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  set_value(key, {GgufValueType::INT32, int64_t{v}});
}
void GgufWriter::set_f32(const std::string& key, float v) {
  set_value(key, {GgufValueType::FLOAT32, double{v}});
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  set_value(key, {GgufValueType::BOOL, v});
}
void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set_value(key, {GgufValueType::STRING, v});
}

// Typed arrays are encoded directly rather than through GgufValue: cheaper for large vocabularies.
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  Kv kv{key, GgufValueType::ARRAY, {}};
  put<uint32_t>(kv.payload, static_cast<uint32_t>(GgufValueType::STRING));
  put<uint64_t>(kv.payload, v.size());
  for (const std::string& x : v) put_string(kv.payload, x);
  kv_.push_back(std::move(kv));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  Kv kv{key, GgufValueType::ARRAY, {}};
  put<uint32_t>(kv.payload, static_cast<uint32_t>(GgufValueType::FLOAT32));
  put<uint64_t>(kv.payload, v.size());
  for (float x : v) put(kv.payload, x);
  kv_.push_back(std::move(kv));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  Kv kv{key, GgufValueType::ARRAY, {}};
  put<uint32_t>(kv.payload, static_cast<uint32_t>(GgufValueType::INT32));
  put<uint64_t>(kv.payload, v.size());
  for (int32_t x : v) put(kv.payload, x);
  kv_.push_back(std::move(kv));
}

uint64_t GgufWriter::tensor_bytes(const std::vector<int64_t>& dims, GgmlType type) {
  require(!dims.empty() && dims.size() <= 4, ErrorCode::kInvalidArgument, "a tensor has 1 to 4 dimensions");
  uint64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) {
    require(dims[i] > 0, ErrorCode::kInvalidArgument, "tensor dimensions must be positive");
    rows *= static_cast<uint64_t>(dims[i]);
  }
  require(dims[0] > 0, ErrorCode::kInvalidArgument, "tensor dimensions must be positive");
  return rows * row_bytes(type, dims[0]);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type,
                            std::vector<uint8_t> data) {
  const uint64_t n = tensor_bytes(dims, type);
  require(data.size() == n, ErrorCode::kInvalidArgument,
          "tensor '" + name + "' has " + std::to_string(data.size()) + " bytes of data, expected " +
              std::to_string(n));
  tensors_.push_back({name, std::move(dims), type, std::move(data), nullptr, n});
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type, FillFn fill) {
  const uint64_t n = tensor_bytes(dims, type);
  require(static_cast<bool>(fill), ErrorCode::kInvalidArgument, "tensor '" + name + "' has no fill function");
  tensors_.push_back({name, std::move(dims), type, {}, std::move(fill), n});
}

std::vector<uint8_t> GgufWriter::header() const {
  std::vector<uint8_t> out(4);
  std::memcpy(out.data(), "GGUF", 4);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const Kv& kv : kv_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.type));
    out.insert(out.end(), kv.payload.begin(), kv.payload.end());
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = align_up(offset + t.n_bytes);
  }
  out.resize(align_up(out.size()), 0);
  return out;
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out = header();
  for (const Tensor& t : tensors_) {
    const size_t at = out.size();
    out.resize(at + t.n_bytes);
    if (t.fill) {
      t.fill(out.data() + at);
    } else {
      std::memcpy(out.data() + at, t.data.data(), t.n_bytes);
    }
    out.resize(align_up(out.size()), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  require(f != nullptr, ErrorCode::kIo, "cannot create " + path + ": " + std::strerror(errno));
  auto write_bytes = [&](const uint8_t* p, size_t n) {
    require(std::fwrite(p, 1, n, f.get()) == n, ErrorCode::kIo,
            "writing " + path + " failed: " + std::strerror(errno));
  };
  const std::vector<uint8_t> head = header();
  write_bytes(head.data(), head.size());
  static const uint8_t kZeros[kAlignment] = {};
  // Two buffers: tensor i is filled while tensor i-1 goes to disk, so generation and I/O overlap.
  std::vector<uint8_t> bufs[2];
  std::future<void> pending;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    const uint8_t* src = t.data.data();
    if (t.fill) {
      std::vector<uint8_t>& buf = bufs[i % 2];
      buf.resize(t.n_bytes);
      t.fill(buf.data());
      src = buf.data();
    }
    if (pending.valid()) pending.get();  // rethrows a write error
    const size_t pad = align_up(t.n_bytes) - t.n_bytes;
    pending = std::async(std::launch::async, [&write_bytes, src, n = t.n_bytes, pad] {
      write_bytes(src, n);
      write_bytes(kZeros, pad);
    });
  }
  if (pending.valid()) pending.get();
  require(std::fflush(f.get()) == 0, ErrorCode::kIo, "writing " + path + " failed: " + std::strerror(errno));
  FILE* raw = f.release();
  require(std::fclose(raw) == 0, ErrorCode::kIo, "closing " + path + " failed: " + std::strerror(errno));
}

void write_gguf_copy_with_string(const GgufFile& src, const std::string& path, const std::string& key,
                                 const std::string& value) {
  GgufWriter w;
  for (const auto& [k, v] : src.metadata())
    if (k != key && k != "general.alignment") w.set_value(k, v);
  w.set_string(key, value);
  for (const GgufTensorInfo& t : src.tensors()) {
    const uint8_t* data = t.data;
    const uint64_t n = t.n_bytes;
    w.add_tensor(t.name, t.dims, t.type, [data, n](uint8_t* dst) { std::memcpy(dst, data, n); });
  }
  w.write(path);
}

}  // namespace fkv
