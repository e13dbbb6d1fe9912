#include "gguf/gguf_parser.h"

#include <cstring>
#include <limits>

#include "util/error.h"

namespace fkv {

namespace {

constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxAlignment = 1u << 20;  // ggml writes 32; anything past 1 MiB is not a real file
constexpr int kMaxArrayDepth = 8;             // nested arrays deeper than this are hostile, not data
constexpr uint32_t kMaxDims = 4;

std::string hex_offset(size_t off) {
  return "offset " + std::to_string(off);
}

// A bounds-checked little-endian reader over the mapping. Every read names what it was reading, so a
// truncated file says "truncated reading the length of key 'x' at offset N".
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& path) : base_(base), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kBadFile, path_ + ": " + what + " (at " + hex_offset(pos_) + ")");
  }

  const uint8_t* take(size_t n, const std::string& what) {
    if (n > remaining()) fail("truncated reading " + what);
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }

  template <typename T>
  T read(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }

  std::string read_string(const std::string& what) {
    const uint64_t len = read<uint64_t>("the length of " + what);
    if (len > remaining())
      fail("length " + std::to_string(len) + " of " + what + " runs past the end of the file");
    const uint8_t* p = take(len, what);
    return std::string(reinterpret_cast<const char*>(p), len);
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Smallest encoding of one value of type t, used to reject counts that cannot fit in the file before
// reserving memory for them.
size_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    case GgufValueType::STRING:
      return 8;
    case GgufValueType::ARRAY:
      return 12;
  }
  return 0;
}

bool valid_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufValueType::FLOAT64);
}

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& key, int depth) {
  GgufValue v;
  v.type = type;
  const std::string what = "the value of key '" + key + "'";
  switch (type) {
    case GgufValueType::UINT8:
      v.value = uint64_t{c.read<uint8_t>(what)};
      break;
    case GgufValueType::INT8:
      v.value = int64_t{c.read<int8_t>(what)};
      break;
    case GgufValueType::UINT16:
      v.value = uint64_t{c.read<uint16_t>(what)};
      break;
    case GgufValueType::INT16:
      v.value = int64_t{c.read<int16_t>(what)};
      break;
    case GgufValueType::UINT32:
      v.value = uint64_t{c.read<uint32_t>(what)};
      break;
    case GgufValueType::INT32:
      v.value = int64_t{c.read<int32_t>(what)};
      break;
    case GgufValueType::UINT64:
      v.value = c.read<uint64_t>(what);
      break;
    case GgufValueType::INT64:
      v.value = c.read<int64_t>(what);
      break;
    case GgufValueType::FLOAT32:
      v.value = double{c.read<float>(what)};
      break;
    case GgufValueType::FLOAT64:
      v.value = c.read<double>(what);
      break;
    case GgufValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>(what);
      if (b > 1) c.fail("bool value " + std::to_string(b) + " of key '" + key + "' is neither 0 nor 1");
      v.value = b != 0;
      break;
    }
    case GgufValueType::STRING:
      v.value = c.read_string(what);
      break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        c.fail("arrays of key '" + key + "' nest deeper than " + std::to_string(kMaxArrayDepth));
      const uint32_t et = c.read<uint32_t>("the element type of array '" + key + "'");
      if (!valid_value_type(et)) c.fail("array '" + key + "' has unknown element type " + std::to_string(et));
      const auto elem = static_cast<GgufValueType>(et);
      const uint64_t count = c.read<uint64_t>("the length of array '" + key + "'");
      // count * min size must fit in what is left; dividing avoids the overflow of multiplying.
      if (count > c.remaining() / min_value_bytes(elem))
        c.fail("array '" + key + "' claims " + std::to_string(count) +
               " elements, more than the file can hold");
      auto arr = std::make_shared<GgufArray>();
      arr->elem_type = elem;
      arr->items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) arr->items.push_back(read_value(c, elem, key, depth + 1));
      v.value = std::move(arr);
      break;
    }
  }
  return v;
}

}  // namespace

void GgufParser::parse(GgufFile& f) {
  Cursor c(f.base_, f.size_, f.path_);
  const uint8_t* magic = c.take(4, "the magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) c.fail("not a GGUF file (bad magic)");
  f.version_ = c.read<uint32_t>("the version");
  require(f.version_ == 2 || f.version_ == 3, ErrorCode::kUnsupported,
          f.path_ + ": GGUF version " + std::to_string(f.version_) + " is not supported (only 2 and 3)");
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Minimal encodings: a kv is key length (8) + type (4) + one byte; a tensor info is name length (8) +
  // n_dims (4) + one dim (8) + type (4) + offset (8).
  if (n_kv > c.remaining() / 13)
    c.fail("metadata count " + std::to_string(n_kv) + " is larger than the file can hold");
  if (n_tensors > c.remaining() / 32)
    c.fail("tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

  f.kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key #" + std::to_string(i));
    const uint32_t t = c.read<uint32_t>("the type of key '" + key + "'");
    if (!valid_value_type(t)) c.fail("key '" + key + "' has unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, static_cast<GgufValueType>(t), key, 0);
    if (!f.kv_index_.emplace(key, f.kv_.size()).second) c.fail("duplicate metadata key '" + key + "'");
    f.kv_.emplace_back(std::move(key), std::move(v));
  }

  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufValueType::UINT32 && a->type != GgufValueType::UINT64 &&
        a->type != GgufValueType::INT32)
      c.fail("general.alignment is not an integer");
    const auto* u = std::get_if<uint64_t>(&a->value);
    const auto* s = std::get_if<int64_t>(&a->value);
    alignment = u ? *u : (*s < 0 ? 0 : static_cast<uint64_t>(*s));
    require(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= kMaxAlignment,
            ErrorCode::kBadFile,
            f.path_ + ": general.alignment " + std::to_string(alignment) + " is not a power of two up to " +
                std::to_string(kMaxAlignment));
  }

  f.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("the name of tensor #" + std::to_string(i));
    const std::string tn = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>("the dimension count of " + tn);
    if (n_dims == 0 || n_dims > kMaxDims)
      c.fail(tn + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    int64_t n_elem = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.read<uint64_t>("dimension " + std::to_string(d) + " of " + tn);
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / n_elem))
        c.fail(tn + " has invalid dimension " + std::to_string(d) + " = " + std::to_string(dim));
      t.dims.push_back(static_cast<int64_t>(dim));
      n_elem *= static_cast<int64_t>(dim);
    }
    const uint32_t type_id = c.read<uint32_t>("the type of " + tn);
    require(is_supported_type(type_id), ErrorCode::kUnsupported,
            f.path_ + ": " + tn + " has unknown type " + std::to_string(type_id));
    t.type = static_cast<GgmlType>(type_id);
    const TypeTraits& tr = type_traits(t.type);
    if (t.dims[0] % tr.block_elems != 0)
      c.fail(tn + " row length " + std::to_string(t.dims[0]) + " is not a multiple of the " + tr.name +
             " block size " + std::to_string(tr.block_elems));
    t.offset = c.read<uint64_t>("the data offset of " + tn);
    if (t.offset % alignment != 0)
      c.fail(tn + " data offset " + std::to_string(t.offset) + " is not aligned to " +
             std::to_string(alignment));
    const uint64_t n_blocks = static_cast<uint64_t>(n_elem / tr.block_elems);
    if (n_blocks > f.size_ / tr.block_bytes) c.fail(tn + " is larger than the whole file");
    t.n_bytes = n_blocks * tr.block_bytes;
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second)
      c.fail("duplicate tensor name '" + t.name + "'");
    f.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor table.
  const uint64_t header_end = c.pos();
  const uint64_t data_start = (header_end + alignment - 1) / alignment * alignment;
  for (GgufTensorInfo& t : f.tensors_) {
    const uint64_t size = f.size_;
    if (data_start > size || t.offset > size - data_start || t.n_bytes > size - data_start - t.offset)
      throw Error(ErrorCode::kBadFile,
                  f.path_ + ": tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                      std::to_string(t.n_bytes) + ") at data section " + std::to_string(data_start) +
                      " runs past the end of the file (" + std::to_string(size) + " bytes)");
    t.data = f.base_ + data_start + t.offset;
  }
  f.data_offset_ = data_start;
  f.alignment_ = static_cast<uint32_t>(alignment);
}

}  // namespace fkv
