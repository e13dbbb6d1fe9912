// Profiles: the heuristic's fractions and dims, JSON round trip, re-selection from calibration errors, and
// clear errors for a profile of the wrong shape.
#include "fourier/fourier_profile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "gguf/gguf_reader.h"
#include "gguf/gguf_writer.h"
#include "kv/kv_options.h"
#include "kv/split_kv_cache.h"
#include "model/llama_hparams.h"
#include "model/random_model.h"
#include "util/error.h"

namespace fkv {
namespace {

TEST(FourierProfile, HeuristicFollowsTheReferenceFractions) {
  const FourierProfile p = heuristic_fourier_profile(28, 3, 64, -1);
  ASSERT_EQ(p.layers.size(), 28u);
  EXPECT_EQ(p.layers[0].k[0].size(), 58u);  // 90% of 64, whole pairs
  EXPECT_EQ(p.layers[0].v[0].size(), 61u);  // 95%
  EXPECT_EQ(p.layers[27].k[0].size(), 32u);
  EXPECT_EQ(p.layers[10].v[2].size(), 51u);
  EXPECT_EQ(p.layers[0].k[0][0], 0);  // highest RoPE frequency first
  EXPECT_NEAR(p.compressed_fraction(), 0.76, 0.01);
  EXPECT_NO_THROW(validate_fourier_profile(p, 28, 3, 64));
  const FourierProfile half = heuristic_fourier_profile(30, 3, 64, 0.5);
  EXPECT_NEAR(half.compressed_fraction(), 0.5, 1e-9);
}

TEST(FourierProfile, RoundTripAndReselection) {
  FourierProfile p = heuristic_fourier_profile(2, 2, 8, -1);
  p.source = "test";
  for (auto& l : p.layers) {
    l.k_mse.assign(2, std::vector<double>(8));
    l.v_mse.assign(2, std::vector<double>(8));
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 8; ++j) {
        l.k_mse[h][j] = h * 8 + j;        // head 0 cheaper than head 1
        l.v_mse[h][j] = (1 - h) * 8 + j;  // head 1 cheaper than head 0
      }
  }
  select_compressed_dims(p, 0.5);
  EXPECT_EQ(p.layers[0].k[0].size(), 8u);
  EXPECT_TRUE(p.layers[0].k[1].empty());
  EXPECT_EQ(p.layers[1].v[1].size(), 8u);
  const std::string path = testing::TempDir() + "/fkv_profile_test.json";
  save_fourier_profile(p, path);
  const FourierProfile q = load_fourier_profile(path);
  EXPECT_EQ(q.layers[1].k, p.layers[1].k);
  EXPECT_EQ(q.layers[1].v_mse, p.layers[1].v_mse);
  std::remove(path.c_str());
}

TEST(FourierProfile, WrongShapeIsAClearError) {
  const FourierProfile p = heuristic_fourier_profile(4, 2, 8, -1);
  auto message = [&](int layers, int heads, int dim) {
    try {
      validate_fourier_profile(p, layers, heads, dim);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(5, 2, 8).find("4 layers, the model has 5"), std::string::npos);
  EXPECT_NE(message(4, 3, 8).find("KV heads"), std::string::npos);
  EXPECT_NE(message(4, 2, 16).find("dims per head"), std::string::npos);
  FourierProfile bad = p;
  bad.layers[1].v[0] = {3, 2};
  EXPECT_THROW(validate_fourier_profile(bad, 4, 2, 8), Error);
  bad.layers[1].v[0] = {9};
  EXPECT_THROW(validate_fourier_profile(bad, 4, 2, 8), Error);
  EXPECT_THROW(load_fourier_profile("/nonexistent/profile.json"), Error);
}

// fkv-calibrate --gguf-out stores the profile in the model file; a fourier cache made for that model uses
// it when no profile file is given, and "heuristic" still asks for the heuristic.
TEST(FourierProfile, ProfileStoredInTheModelFile) {
  const std::string plain = testing::TempDir() + "/fkv_profile_plain.gguf";
  const std::string with = testing::TempDir() + "/fkv_profile_with.gguf";
  RandomModelOptions ro;
  ro.shape = "tiny";
  make_random_model(ro, plain);
  const auto src = GgufFile::open(plain);
  const LlamaHparams hp = read_llama_hparams(*src);
  EXPECT_TRUE(hp.fourier_profile_json.empty());
  FourierProfile p = heuristic_fourier_profile(hp.n_layers, hp.n_kv_heads, hp.head_dim, 0.25);
  p.source = "embedded test profile";
  write_gguf_copy_with_string(*src, with, kFourierProfileKey, fourier_profile_json(p));

  const auto copy = GgufFile::open(with);
  ASSERT_EQ(copy->tensors().size(), src->tensors().size());
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const GgufTensorInfo &a = src->tensors()[i], &b = copy->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    ASSERT_EQ(a.n_bytes, b.n_bytes);
    EXPECT_EQ(0, std::memcmp(a.data, b.data, a.n_bytes)) << a.name;
  }
  LlamaHparams hp2 = read_llama_hparams(*copy);
  ASSERT_FALSE(hp2.fourier_profile_json.empty());

  auto be = create_cpu_backend(1);
  KvOptions o;
  o.policy = "fourier";
  o.sink = 4;
  o.window = 16;
  o.fourier_n = 8;
  auto compressed_k0 = [&](const KvOptions& opts, const LlamaHparams& h) {
    const auto cache = make_kv_cache(*be, h, opts, 128);
    return dynamic_cast<const SplitKvCache&>(*cache).layer(0).k.dims.comp;
  };
  const SplitKvDims want = split_dims(p.layers[0].k, hp.head_dim);
  EXPECT_EQ(compressed_k0(o, hp2), want.comp);
  KvOptions heuristic = o;
  heuristic.fourier_profile = "heuristic";
  const FourierProfile h = heuristic_fourier_profile(hp.n_layers, hp.n_kv_heads, hp.head_dim, -1);
  EXPECT_EQ(compressed_k0(heuristic, hp2), split_dims(h.layers[0].k, hp.head_dim).comp);
  EXPECT_NE(want.comp, split_dims(h.layers[0].k, hp.head_dim).comp);

  hp2.fourier_profile_json = "{not json";
  try {
    make_kv_cache(*be, hp2, o, 128);
    ADD_FAILURE() << "a broken stored profile was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadFile);
    EXPECT_NE(std::string(e.what()).find(kFourierProfileKey), std::string::npos) << e.what();
  }
  std::remove(plain.c_str());
  std::remove(with.c_str());
}

}  // namespace
}  // namespace fkv
