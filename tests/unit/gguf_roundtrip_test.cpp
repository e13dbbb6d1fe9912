// Writer -> file -> reader round trips: every metadata type, nested arrays, tensors of several types.
#include <gtest/gtest.h>

#include <cmath>

#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "gguf_test_files.h"
#include "util/error.h"

namespace fkv {
namespace {

using test::TempFile;

std::shared_ptr<GgufArray> i32_array(std::vector<int64_t> v) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = GgufValueType::INT32;
  for (int64_t x : v) {
    // Built member by member: GCC 12 warns falsely (-Wmaybe-uninitialized) on braced GgufValue temporaries.
    GgufValue& item = a->items.emplace_back();
    item.type = GgufValueType::INT32;
    item.value.emplace<int64_t>(x);
  }
  return a;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + seed);
  return v;
}

GgufWriter make_writer() {
  GgufWriter w;
  w.set_value("u8", {GgufValueType::UINT8, uint64_t{250}});
  w.set_value("i8", {GgufValueType::INT8, int64_t{-100}});
  w.set_value("u16", {GgufValueType::UINT16, uint64_t{65000}});
  w.set_value("i16", {GgufValueType::INT16, int64_t{-30000}});
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set_value("u64", {GgufValueType::UINT64, uint64_t{1} << 62});
  w.set_value("u64.huge", {GgufValueType::UINT64, ~uint64_t{0}});
  w.set_value("i64", {GgufValueType::INT64, int64_t{-(int64_t{1} << 50)}});
  w.set_f32("f32", 1.5f);
  w.set_value("f64", {GgufValueType::FLOAT64, 0.1});
  w.set_bool("bool", true);
  w.set_string("str", "hello, gguf");
  w.set_string("empty", "");
  w.set_string_array("strs", {"a", "", "ccc"});
  w.set_f32_array("f32s", {1.0f, -2.5f});
  w.set_i32_array("i32s", {7, -8, 9});
  auto nested = std::make_shared<GgufArray>();
  nested->elem_type = GgufValueType::ARRAY;
  nested->items.push_back({GgufValueType::ARRAY, i32_array({1, 2})});
  nested->items.push_back({GgufValueType::ARRAY, i32_array({})});
  nested->items.push_back({GgufValueType::ARRAY, i32_array({3})});
  w.set_value("nested", {GgufValueType::ARRAY, nested});
  w.add_tensor("t.f32", {4, 3}, GgmlType::F32, pattern(48, 1));
  w.add_tensor("t.q4_0", {64, 2}, GgmlType::Q4_0, pattern(72, 2));
  w.add_tensor("t.f16", {8}, GgmlType::F16, pattern(16, 3));
  w.add_tensor("t.q6_k", {256, 1, 1, 2}, GgmlType::Q6_K, [](uint8_t* dst) {
    const auto p = pattern(420, 4);
    std::copy(p.begin(), p.end(), dst);
  });
  return w;
}

TEST(GgufRoundTrip, EveryMetadataTypeAndTensor) {
  TempFile tmp("roundtrip");
  make_writer().write(tmp.path());
  auto f = GgufFile::open(tmp.path());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 18u);
  EXPECT_EQ(f->metadata()[0].first, "u8");

  EXPECT_EQ(f->get_int("u8"), 250);
  EXPECT_EQ(f->find("u8")->type, GgufValueType::UINT8);
  EXPECT_EQ(f->get_int("i8"), -100);
  EXPECT_EQ(f->get_int("u16"), 65000);
  EXPECT_EQ(f->get_int("i16"), -30000);
  EXPECT_EQ(f->get_int("u32"), 4000000000LL);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(f->get_int("u64"), int64_t{1} << 62);
  EXPECT_EQ(f->get_int("i64"), -(int64_t{1} << 50));
  EXPECT_EQ(f->get_float("f32"), 1.5);
  EXPECT_EQ(f->get_float("f64"), 0.1);
  EXPECT_EQ(f->get_float("u32"), 4e9);  // integers read as floats
  EXPECT_EQ(f->get_bool("bool"), true);
  EXPECT_EQ(f->get_string("str"), "hello, gguf");
  EXPECT_EQ(f->get_string("empty"), "");

  const GgufArray* strs = f->get_array("strs");
  ASSERT_NE(strs, nullptr);
  EXPECT_EQ(strs->elem_type, GgufValueType::STRING);
  ASSERT_EQ(strs->items.size(), 3u);
  EXPECT_EQ(std::get<std::string>(strs->items[2].value), "ccc");
  EXPECT_EQ(std::get<std::string>(strs->items[1].value), "");
  const GgufArray* f32s = f->get_array("f32s");
  ASSERT_EQ(f32s->items.size(), 2u);
  EXPECT_EQ(std::get<double>(f32s->items[1].value), -2.5);
  const GgufArray* i32s = f->get_array("i32s");
  EXPECT_EQ(std::get<int64_t>(i32s->items[1].value), -8);
  const GgufArray* nested = f->get_array("nested");
  ASSERT_EQ(nested->items.size(), 3u);
  EXPECT_EQ(nested->elem_type, GgufValueType::ARRAY);
  const auto& inner = std::get<std::shared_ptr<GgufArray>>(nested->items[0].value);
  ASSERT_EQ(inner->items.size(), 2u);
  EXPECT_EQ(std::get<int64_t>(inner->items[1].value), 2);
  EXPECT_TRUE(std::get<std::shared_ptr<GgufArray>>(nested->items[1].value)->items.empty());

  ASSERT_EQ(f->tensors().size(), 4u);
  const GgufTensorInfo* t = f->find_tensor("t.q4_0");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(t->type, GgmlType::Q4_0);
  EXPECT_EQ(t->n_bytes, 72u);
  EXPECT_EQ(t->n_elements(), 128);
  EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->n_bytes), pattern(72, 2));
  const GgufTensorInfo* q6 = f->find_tensor("t.q6_k");
  ASSERT_NE(q6, nullptr);
  EXPECT_EQ(q6->dims, (std::vector<int64_t>{256, 1, 1, 2}));
  EXPECT_EQ(std::vector<uint8_t>(q6->data, q6->data + q6->n_bytes), pattern(420, 4));
  for (const GgufTensorInfo& ti : f->tensors()) {
    EXPECT_EQ(ti.offset % 32, 0u) << ti.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(ti.data) % 32, 0u) << ti.name;
  }
  EXPECT_EQ(f->find_tensor("absent"), nullptr);
  EXPECT_EQ(f->data_offset() % 32, 0u);
}

TEST(GgufRoundTrip, SerializeMatchesWrite) {
  TempFile tmp("serialize");
  const GgufWriter w = make_writer();
  w.write(tmp.path());
  std::ifstream in(tmp.path(), std::ios::binary);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(file, w.serialize());
}

TEST(GgufRoundTrip, GettersCheckTypes) {
  TempFile tmp("getters");
  make_writer().write(tmp.path());
  auto f = GgufFile::open(tmp.path());
  EXPECT_EQ(f->get_int("absent"), std::nullopt);
  EXPECT_EQ(f->get_string("absent"), std::nullopt);
  EXPECT_EQ(f->get_array("absent"), nullptr);
  EXPECT_EQ(f->find("absent"), nullptr);
  auto expect_bad = [&](auto fn, const std::string& key) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << key;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBadFile);
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_bad([&] { f->get_int("str"); }, "str");
  expect_bad([&] { f->get_int("f32"); }, "f32");
  expect_bad([&] { f->get_int("u64.huge"); }, "u64.huge");
  expect_bad([&] { f->get_float("str"); }, "str");
  expect_bad([&] { f->get_string("u32"); }, "u32");
  expect_bad([&] { f->get_bool("u8"); }, "u8");
  expect_bad([&] { f->get_array("str"); }, "str");
}

TEST(GgufRoundTrip, EmptyFileHasNoTensors) {
  TempFile tmp("empty");
  GgufWriter().write(tmp.path());
  auto f = GgufFile::open(tmp.path());
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufRoundTrip, WriterRejectsWrongDataSize) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", {32}, GgmlType::Q4_0, std::vector<uint8_t>(17)), Error);
  EXPECT_THROW(w.add_tensor("x", {16}, GgmlType::Q4_0, std::vector<uint8_t>(9)), Error);
}

TEST(GgufRoundTrip, MissingFileIsIoError) {
  try {
    GgufFile::open("/nonexistent/fkv/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/fkv/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace fkv
