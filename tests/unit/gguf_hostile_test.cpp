// Malformed and hostile GGUF files: each must give a clear fkv::Error naming the problem, never a crash.
// These run under ASan/UBSan in CI, which is what catches an out-of-bounds read the checks missed.
#include <gtest/gtest.h>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "gguf_test_files.h"
#include "util/error.h"

namespace fkv {
namespace {

using test::RawGguf;
using test::TempFile;

constexpr uint32_t kF32 = 0, kQ4_0 = 2;

// Opens bytes as a file and returns the error (code kInternal if none was thrown).
Error open_error(const std::vector<uint8_t>& bytes) {
  TempFile tmp("hostile");
  tmp.write(bytes);
  try {
    GgufFile::open(tmp.path());
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

void expect_error(const std::vector<uint8_t>& bytes, ErrorCode code, const std::string& needle) {
  const Error e = open_error(bytes);
  EXPECT_EQ(e.code(), code) << e.what();
  EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
}

// One kv and one F32 [8, 2] tensor, built by hand.
RawGguf valid_file(uint64_t tensor_offset = 0) {
  RawGguf g;
  g.header(3, 1, 1).str("general.architecture").u32(8).str("llama");
  g.tensor("w", {8, 2}, kF32, tensor_offset).pad().zeros(tensor_offset + 64);
  return g;
}

TEST(GgufHostile, HandMadeFileIsValid) {
  TempFile tmp("valid");
  tmp.write(valid_file().b);
  auto f = GgufFile::open(tmp.path());
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->find_tensor("w")->n_bytes, 64u);
}

TEST(GgufHostile, EveryTruncationIsAnError) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_string_array("tokenizer.ggml.tokens", {"<s>", "a", "bc"});
  auto nested = std::make_shared<GgufArray>();
  nested->elem_type = GgufValueType::ARRAY;
  auto inner = std::make_shared<GgufArray>();
  inner->elem_type = GgufValueType::UINT8;
  inner->items.push_back({GgufValueType::UINT8, uint64_t{7}});
  nested->items.push_back({GgufValueType::ARRAY, inner});
  w.set_value("nested", {GgufValueType::ARRAY, nested});
  w.set_f32("eps", 1e-5f);
  w.add_tensor("a", {32, 2}, GgmlType::Q4_0, std::vector<uint8_t>(36, 0x11));
  w.add_tensor("b", {3}, GgmlType::F32, std::vector<uint8_t>(12, 0));
  const std::vector<uint8_t> bytes = w.serialize();
  // The file is complete once the last tensor's data ends; the trailing padding is optional.
  TempFile full("full");
  full.write(bytes);
  size_t needed = 0;
  {
    auto f = GgufFile::open(full.path());
    const GgufTensorInfo* b = f->find_tensor("b");
    needed =
        size_t(b->data - f->find_tensor("a")->data) + f->find_tensor("a")->offset + f->data_offset() + 12;
  }
  ASSERT_LE(needed, bytes.size());
  TempFile tmp("truncated");
  for (size_t n = 0; n < bytes.size(); ++n) {
    tmp.write(bytes, n);
    if (n >= needed) {
      EXPECT_NO_THROW(GgufFile::open(tmp.path())) << "prefix " << n;
      continue;
    }
    try {
      GgufFile::open(tmp.path());
      ADD_FAILURE() << "prefix of " << n << " bytes opened";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadFile) << "prefix " << n << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(tmp.path()), std::string::npos) << e.what();
    }
  }
}

TEST(GgufHostile, BadMagic) {
  auto g = valid_file();
  g.b[0] = 'X';
  expect_error(g.b, ErrorCode::kBadFile, "magic");
}

TEST(GgufHostile, UnsupportedVersions) {
  for (uint32_t v : {0u, 1u, 4u, 99u}) {
    RawGguf g;
    g.header(v, 0, 0).zeros(64);
    expect_error(g.b, ErrorCode::kUnsupported, "version " + std::to_string(v));
  }
  RawGguf v2;
  v2.header(2, 0, 0).zeros(8);
  TempFile tmp("v2");
  tmp.write(v2.b);
  EXPECT_EQ(GgufFile::open(tmp.path())->version(), 2u);
}

TEST(GgufHostile, AbsurdCounts) {
  RawGguf kv;
  kv.header(3, 0, uint64_t{1} << 60).zeros(64);
  expect_error(kv.b, ErrorCode::kBadFile, "metadata count");
  RawGguf tensors;
  tensors.header(3, ~uint64_t{0}, 0).zeros(64);
  expect_error(tensors.b, ErrorCode::kBadFile, "tensor count");
  RawGguf arr;
  arr.header(3, 0, 1).str("big").u32(9).u32(6).u64(uint64_t{1} << 62).zeros(64);
  expect_error(arr.b, ErrorCode::kBadFile, "array 'big'");
  RawGguf strs;  // count * 8 would overflow if multiplied
  strs.header(3, 0, 1).str("strs").u32(9).u32(8).u64(~uint64_t{0} / 4).zeros(64);
  expect_error(strs.b, ErrorCode::kBadFile, "array 'strs'");
}

TEST(GgufHostile, StringLengthPastEnd) {
  RawGguf key;
  key.header(3, 0, 1).u64(1000).zeros(20);
  expect_error(key.b, ErrorCode::kBadFile, "metadata key #0");
  RawGguf val;
  val.header(3, 0, 1).str("general.name").u32(8).u64(~uint64_t{0}).zeros(20);
  expect_error(val.b, ErrorCode::kBadFile, "general.name");
  RawGguf name;
  name.header(3, 1, 0).u64(uint64_t{1} << 40).zeros(64);
  expect_error(name.b, ErrorCode::kBadFile, "tensor #0");
}

TEST(GgufHostile, BadValueTypes) {
  RawGguf t;
  t.header(3, 0, 1).str("k").u32(13).zeros(16);
  expect_error(t.b, ErrorCode::kBadFile, "unknown value type 13");
  RawGguf et;
  et.header(3, 0, 1).str("k").u32(9).u32(200).u64(0).zeros(16);
  expect_error(et.b, ErrorCode::kBadFile, "element type 200");
  RawGguf b;
  b.header(3, 0, 1).str("flag").u32(7).u8(2).zeros(16);
  expect_error(b.b, ErrorCode::kBadFile, "flag");
  RawGguf deep;  // arrays nested 100 deep: rejected before the recursion goes far
  deep.header(3, 0, 1).str("deep").u32(9);
  for (int i = 0; i < 100; ++i) deep.u32(9).u64(1);
  deep.zeros(64);
  expect_error(deep.b, ErrorCode::kBadFile, "deep");
}

TEST(GgufHostile, TooManyDims) {
  RawGguf g;
  g.header(3, 1, 0).tensor("w", {2, 2, 2, 2, 2}, kF32, 0).pad().zeros(256);
  expect_error(g.b, ErrorCode::kBadFile, "5 dimensions");
  RawGguf zero;
  zero.header(3, 1, 0).tensor("w", {}, kF32, 0).pad().zeros(256);
  expect_error(zero.b, ErrorCode::kBadFile, "0 dimensions");
}

TEST(GgufHostile, BadDims) {
  RawGguf zero;
  zero.header(3, 1, 0).tensor("w", {8, 0}, kF32, 0).pad().zeros(256);
  expect_error(zero.b, ErrorCode::kBadFile, "dimension 1");
  RawGguf overflow;
  overflow.header(3, 1, 0).tensor("w", {uint64_t{1} << 40, uint64_t{1} << 40}, kF32, 0).pad().zeros(256);
  expect_error(overflow.b, ErrorCode::kBadFile, "tensor 'w'");
  RawGguf huge;  // fits int64 elements, but not the file
  huge.header(3, 1, 0).tensor("w", {uint64_t{1} << 31, uint64_t{1} << 31}, kF32, 0).pad().zeros(256);
  expect_error(huge.b, ErrorCode::kBadFile, "tensor 'w'");
  RawGguf row;
  row.header(3, 1, 0).tensor("blk.0.ffn_up.weight", {16, 2}, kQ4_0, 0).pad().zeros(256);
  expect_error(row.b, ErrorCode::kBadFile, "block size 32");
}

TEST(GgufHostile, TensorOffsetPastEnd) {
  RawGguf g;
  g.header(3, 1, 0).tensor("output.weight", {8, 2}, kF32, 32).pad().zeros(64);
  expect_error(g.b, ErrorCode::kBadFile, "tensor 'output.weight'");
  RawGguf far;
  far.header(3, 1, 0).tensor("w", {8}, kF32, ~uint64_t{0} - 31).pad().zeros(64);
  expect_error(far.b, ErrorCode::kBadFile, "tensor 'w'");
}

TEST(GgufHostile, MisalignedOffset) {
  RawGguf g;
  g.header(3, 1, 0).tensor("w", {8}, kF32, 4).pad().zeros(64);
  expect_error(g.b, ErrorCode::kBadFile, "not aligned");
}

TEST(GgufHostile, UnknownTensorType) {
  RawGguf g;
  g.header(3, 1, 0).tensor("blk.0.attn_q.weight", {32}, 77, 0).pad().zeros(256);
  expect_error(g.b, ErrorCode::kUnsupported, "tensor 'blk.0.attn_q.weight' has unknown type 77");
}

TEST(GgufHostile, BadAlignment) {
  for (uint32_t a : {0u, 48u, 1u << 30}) {
    RawGguf g;
    g.header(3, 0, 1).str("general.alignment").u32(4).u32(a).zeros(64);
    expect_error(g.b, ErrorCode::kBadFile, "general.alignment");
  }
  RawGguf s;
  s.header(3, 0, 1).str("general.alignment").u32(8).str("32").zeros(64);
  expect_error(s.b, ErrorCode::kBadFile, "general.alignment");
}

TEST(GgufHostile, CustomAlignmentIsHonoured) {
  RawGguf g;
  g.header(3, 1, 1).str("general.alignment").u32(4).u32(64).tensor("w", {8}, kF32, 64).pad(64).zeros(128);
  TempFile tmp("align64");
  tmp.write(g.b);
  auto f = GgufFile::open(tmp.path());
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  RawGguf bad;
  bad.header(3, 1, 1).str("general.alignment").u32(4).u32(64).tensor("w", {8}, kF32, 32).pad(64).zeros(128);
  expect_error(bad.b, ErrorCode::kBadFile, "not aligned to 64");
}

TEST(GgufHostile, DuplicateNames) {
  GgufWriter keys;
  keys.set_u32("llama.block_count", 1);
  keys.set_u32("llama.block_count", 2);
  expect_error(keys.serialize(), ErrorCode::kBadFile, "duplicate metadata key 'llama.block_count'");
  GgufWriter tensors;
  tensors.add_tensor("w", {4}, GgmlType::F32, std::vector<uint8_t>(16));
  tensors.add_tensor("w", {4}, GgmlType::F32, std::vector<uint8_t>(16));
  expect_error(tensors.serialize(), ErrorCode::kBadFile, "duplicate tensor name 'w'");
}

TEST(GgufHostile, NotARegularFile) {
  try {
    GgufFile::open("/tmp");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
  }
}

}  // namespace
}  // namespace fkv
