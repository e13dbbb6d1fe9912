// The real default model (SmolLM2-135M-Instruct, Q4_1) through the GGUF reader: metadata and the tensor
// table as llama.cpp wrote them. A missing model is a failure (see test_paths.h).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "gguf/gguf_reader.h"
#include "model/quant.h"
#include "test_paths.h"

namespace fkv {
namespace {

TEST(GgufDefaultModel, MetadataAndTensorTable) {
  const std::string path = test::default_model_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tools/fetch-default-model.sh";
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.block_count"), 30);
  EXPECT_EQ(f->get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f->get_int("llama.feed_forward_length"), 1536);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f->get_int("llama.context_length"), 8192);
  EXPECT_NEAR(*f->get_float("llama.rope.freq_base"), 100000.0, 1e-3);
  const GgufArray* tokens = f->get_array("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->elem_type, GgufValueType::STRING);
  EXPECT_EQ(tokens->items.size(), 49152u);

  // token_embd, output_norm and 9 tensors per layer; the output projection is tied to token_embd.
  EXPECT_EQ(f->tensors().size(), 2u + 30u * 9u);
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  int n_q4_1 = 0;
  for (const GgufTensorInfo& t : f->tensors()) n_q4_1 += t.type == GgmlType::Q4_1;
  EXPECT_EQ(n_q4_1, 30 * 7);
  const GgufTensorInfo* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::Q8_0);  // llama.cpp keeps the (tied) embedding at 8 bits in a Q4_1 file
  EXPECT_EQ(emb->dims, (std::vector<int64_t>{576, 49152}));
  const GgufTensorInfo* norm = f->find_tensor("blk.29.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, GgmlType::F32);
  EXPECT_EQ(norm->dims, (std::vector<int64_t>{576}));
  const GgufTensorInfo* k = f->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->type, GgmlType::Q4_1);
  EXPECT_EQ(k->dims, (std::vector<int64_t>{576, 192}));
  const GgufTensorInfo* down = f->find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->dims, (std::vector<int64_t>{1536, 576}));

  // Weights decode to finite, plausibly small values.
  std::vector<float> row(576);
  dequantize_row(emb->type, emb->data, row.data(), 576);
  double sq = 0;
  for (float v : row) {
    ASSERT_TRUE(std::isfinite(v));
    sq += double(v) * v;
  }
  EXPECT_GT(sq, 0.0);
  EXPECT_LT(sq / 576, 1.0);
}

}  // namespace
}  // namespace fkv
