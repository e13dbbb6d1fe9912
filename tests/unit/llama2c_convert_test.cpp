// fkv-convert-llama2c's library half on the shared stories260K checkpoint: shapes, metadata, and values
// that must land where llama.cpp's names say (checked against the raw .bin).
#include "model/llama2c_convert.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "gguf/gguf_reader.h"
#include "gguf_test_files.h"
#include "test_paths.h"
#include "util/error.h"

namespace fkv {
namespace {

std::string stories_path() {
  return test::shared_dir() + "/models/stories260K.bin";
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

float raw_float(const std::vector<uint8_t>& bin, size_t index) {  // index-th float after the header
  float v;
  std::memcpy(&v, bin.data() + 28 + 4 * index, 4);
  return v;
}

float tensor_float(const GgufTensorInfo* t, size_t index) {
  float v;
  std::memcpy(&v, t->data + 4 * index, 4);
  return v;
}

TEST(Llama2cConvert, Stories260K) {
  test::TempFile out("stories260K.gguf");
  const Llama2cConfig c = convert_llama2c(stories_path(), out.path());
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.shared_classifier);

  auto f = GgufFile::open(out.path());
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.context_length"), 512);
  EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_int("llama.block_count"), 5);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f->get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f->get_int("llama.vocab_size"), 512);
  EXPECT_FLOAT_EQ(float(*f->get_float("llama.rope.freq_base")), 10000.0f);
  EXPECT_FLOAT_EQ(float(*f->get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f->get_array("tokenizer.ggml.tokens"), nullptr);

  EXPECT_EQ(f->tensors().size(), 2u + 5u * 9u);
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  auto dims = [&](const std::string& name) {
    const GgufTensorInfo* t = f->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (t) {
      EXPECT_EQ(t->type, GgmlType::F32) << name;
    }
    return t ? t->dims : std::vector<int64_t>{};
  };
  using D = std::vector<int64_t>;
  EXPECT_EQ(dims("token_embd.weight"), (D{64, 512}));
  EXPECT_EQ(dims("blk.0.attn_norm.weight"), (D{64}));
  EXPECT_EQ(dims("blk.4.attn_q.weight"), (D{64, 64}));
  EXPECT_EQ(dims("blk.4.attn_k.weight"), (D{64, 32}));
  EXPECT_EQ(dims("blk.4.attn_v.weight"), (D{64, 32}));
  EXPECT_EQ(dims("blk.4.attn_output.weight"), (D{64, 64}));
  EXPECT_EQ(dims("blk.4.ffn_norm.weight"), (D{64}));
  EXPECT_EQ(dims("blk.4.ffn_gate.weight"), (D{64, 172}));
  EXPECT_EQ(dims("blk.4.ffn_down.weight"), (D{172, 64}));
  EXPECT_EQ(dims("blk.4.ffn_up.weight"), (D{64, 172}));
  EXPECT_EQ(dims("output_norm.weight"), (D{64}));

  // Values against the raw file, using the offsets of README.md's layout.
  const auto bin = read_all(stories_path());
  const size_t dim = 64, hidden = 172, L = 5, kv = 32, vocab = 512;
  const size_t emb = 0, rms_att = emb + vocab * dim, wq = rms_att + L * dim, wk = wq + L * dim * dim,
               wv = wk + L * kv * dim, wo = wv + L * kv * dim, rms_ffn = wo + L * dim * dim,
               w1 = rms_ffn + L * dim, w2 = w1 + L * hidden * dim, w3 = w2 + L * dim * hidden,
               rms_final = w3 + L * hidden * dim;
  EXPECT_EQ(tensor_float(f->find_tensor("token_embd.weight"), 0), raw_float(bin, emb));
  EXPECT_EQ(tensor_float(f->find_tensor("token_embd.weight"), 511 * 64 + 63),
            raw_float(bin, emb + 511 * 64 + 63));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.3.attn_norm.weight"), 5), raw_float(bin, rms_att + 3 * dim + 5));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.2.attn_q.weight"), 100),
            raw_float(bin, wq + 2 * dim * dim + 100));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.1.attn_k.weight"), 2047),
            raw_float(bin, wk + 1 * kv * dim + 2047));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.4.attn_v.weight"), 7), raw_float(bin, wv + 4 * kv * dim + 7));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.0.attn_output.weight"), 9), raw_float(bin, wo + 9));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.2.ffn_norm.weight"), 1), raw_float(bin, rms_ffn + 2 * dim + 1));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.3.ffn_gate.weight"), 333),
            raw_float(bin, w1 + 3 * hidden * dim + 333));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.3.ffn_down.weight"), 333),
            raw_float(bin, w2 + 3 * dim * hidden + 333));
  EXPECT_EQ(tensor_float(f->find_tensor("blk.3.ffn_up.weight"), 333),
            raw_float(bin, w3 + 3 * hidden * dim + 333));
  EXPECT_EQ(tensor_float(f->find_tensor("output_norm.weight"), 63), raw_float(bin, rms_final + 63));
}

Error convert_error(const std::vector<uint8_t>& bytes) {
  test::TempFile in("llama2c.bin"), out("llama2c.gguf");
  in.write(bytes);
  try {
    convert_llama2c(in.path(), out.path());
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

TEST(Llama2cConvert, RejectsBadInput) {
  const auto bin = read_all(stories_path());
  ASSERT_GT(bin.size(), 1000u);
  auto truncated = bin;
  truncated.resize(bin.size() - 4);
  Error e = convert_error(truncated);
  EXPECT_EQ(e.code(), ErrorCode::kBadFile);
  EXPECT_NE(std::string(e.what()).find("implies"), std::string::npos) << e.what();

  auto bad_heads = bin;
  const int32_t seven = 7;
  std::memcpy(bad_heads.data() + 12, &seven, 4);  // n_heads 7 does not divide dim 64
  e = convert_error(bad_heads);
  EXPECT_EQ(e.code(), ErrorCode::kBadFile);
  EXPECT_NE(std::string(e.what()).find("n_heads"), std::string::npos) << e.what();

  e = convert_error(std::vector<uint8_t>(10, 0));
  EXPECT_EQ(e.code(), ErrorCode::kBadFile);

  std::vector<uint8_t> zeros(28 + 64, 0);
  e = convert_error(zeros);
  EXPECT_EQ(e.code(), ErrorCode::kBadFile);

  std::vector<uint8_t> v1 = {'2', '4', 'k', 'a'};  // llama2.c v1+ exports: uint32 magic 0x616b3432 ("ak42")
  v1.resize(256, 0);
  e = convert_error(v1);
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);

  try {
    convert_llama2c("/nonexistent/stories.bin", "/tmp/never-written.gguf");
    FAIL();
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kIo);
  }
}

}  // namespace
}  // namespace fkv
