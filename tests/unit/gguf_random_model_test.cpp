// fkv-make-random-model's library half: tiny models of every type read back through the GGUF reader
// with the LLaMA tensor table, sane weight statistics, and output independent of the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "gguf/gguf_reader.h"
#include "gguf_test_files.h"
#include "model/quant.h"
#include "model/random_model.h"
#include "util/error.h"

namespace fkv {
namespace {

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void check_model(const std::string& shape_name, GgmlType type) {
  SCOPED_TRACE(shape_name + " " + type_name(uint32_t(type)));
  const RandomModelShape& s = *find_random_model_shape(shape_name);
  test::TempFile tmp("random-" + shape_name);
  RandomModelOptions o;
  o.shape = shape_name;
  o.type = type;
  o.threads = 3;
  make_random_model(o, tmp.path());
  auto f = GgufFile::open(tmp.path());
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.embedding_length"), s.dim);
  EXPECT_EQ(f->get_int("llama.block_count"), s.n_layers);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), s.n_heads);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), s.n_kv_heads);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), s.ffn);
  EXPECT_EQ(f->get_int("llama.vocab_size"), s.vocab);
  EXPECT_EQ(f->get_int("llama.rope.dimension_count"), s.dim / s.n_heads);
  EXPECT_EQ(f->tensors().size(), size_t(2 + 9 * s.n_layers + (s.tied_output ? 0 : 1)));

  const int64_t kv_dim = s.dim / s.n_heads * s.n_kv_heads;
  const GgufTensorInfo* k = f->find_tensor("blk.1.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dims, (std::vector<int64_t>{s.dim, kv_dim}));
  EXPECT_EQ(k->type, random_model_tensor_type(type, s.dim));
  const GgufTensorInfo* down = f->find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dims, (std::vector<int64_t>{s.ffn, s.dim}));
  EXPECT_EQ(f->find_tensor("blk.0.ffn_norm.weight")->type, GgmlType::F32);

  // Matrices: mean ~0, std ~0.02; norms ~1.
  std::vector<float> w(size_t(k->n_elements()));
  dequantize_row(k->type, k->data, w.data(), k->n_elements());
  double sum = 0, sq = 0;
  for (float v : w) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += double(v) * v;
  }
  const double mean = sum / double(w.size()), stddev = std::sqrt(sq / double(w.size()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(stddev, 0.02, 0.004);
  const GgufTensorInfo* norm = f->find_tensor("output_norm.weight");
  std::vector<float> n(size_t(s.dim));
  dequantize_row(GgmlType::F32, norm->data, n.data(), s.dim);
  for (float v : n) EXPECT_NEAR(v, 1.0f, 0.15f);
}

TEST(RandomModel, TinyEveryType) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K})
    check_model("tiny", t);
}

TEST(RandomModel, SmallKQuantsKeepTheirType) {
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    check_model("small", t);
    EXPECT_EQ(random_model_tensor_type(t, 256), t);
  }
  EXPECT_EQ(random_model_tensor_type(GgmlType::Q4_K, 64), GgmlType::Q8_0);
  EXPECT_EQ(random_model_tensor_type(GgmlType::Q4_0, 48), GgmlType::F16);
}

TEST(RandomModel, DeterministicAcrossThreadCounts) {
  test::TempFile a("random-a"), b("random-b");
  RandomModelOptions o;
  o.type = GgmlType::Q4_0;
  o.seed = 42;
  o.threads = 1;
  make_random_model(o, a.path());
  o.threads = 4;
  make_random_model(o, b.path());
  EXPECT_EQ(read_all(a.path()), read_all(b.path()));
  o.seed = 43;
  make_random_model(o, b.path());
  EXPECT_NE(read_all(a.path()), read_all(b.path()));
}

TEST(RandomModel, Llama3RopeFactors) {
  const auto f = llama3_rope_freq_factors(128, 500000.0f, 8.0f, 1.0f, 4.0f, 8192);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f.front(), 1.0f);  // high frequencies untouched
  EXPECT_EQ(f.back(), 8.0f);   // low frequencies divided by the full factor
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);
  EXPECT_NE(find_random_model_shape("llama3-8b"), nullptr);
  EXPECT_EQ(find_random_model_shape("llama3-70b"), nullptr);
  RandomModelOptions o;
  o.shape = "nope";
  EXPECT_THROW(make_random_model(o, "/tmp/never-written.gguf"), Error);
}

}  // namespace
}  // namespace fkv
