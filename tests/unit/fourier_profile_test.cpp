// Profiles: the heuristic's fractions and dims, JSON round trip, re-selection from calibration errors, and
// clear errors for a profile of the wrong shape.
#include "fourier/fourier_profile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

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

}  // namespace
}  // namespace fkv
