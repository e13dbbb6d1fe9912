// Shared by the C API tests: the default model loaded once per test program, on the CPU, two threads.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fkv.h"
#include "test_paths.h"

namespace fkv::test {

// ASSERT that a call succeeded, showing fkv_last_error() when not.
#define FKV_ASSERT_OK(call)                                                                            \
  do {                                                                                                 \
    const fkv_status fkv_s_ = (call);                                                                  \
    ASSERT_EQ(fkv_s_, FKV_OK) << #call << ": " << fkv_status_name(fkv_s_) << ": " << fkv_last_error(); \
  } while (0)

inline fkv_model_options cpu_model_options() {
  fkv_model_options o;
  fkv_model_options_init(&o);
  o.backend = "cpu";
  o.n_threads = 2;
  o.context.n_ctx = 256;
  return o;
}

// One model for all tests of a program: loading is the slow part.
class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fkv_model_options o = cpu_model_options();
    const fkv_status s = fkv_model_load(default_model_path().c_str(), &o, &model_);
    ASSERT_EQ(s, FKV_OK) << fkv_last_error();
  }
  static void TearDownTestSuite() {
    fkv_model_free(model_);
    model_ = nullptr;
  }

  static std::vector<int32_t> tokenize(const std::string& text) {
    size_t n = 0;
    fkv_tokenize(model_, text.c_str(), 1, 1, nullptr, 0, &n);
    std::vector<int32_t> ids(n);
    EXPECT_EQ(fkv_tokenize(model_, text.c_str(), 1, 1, ids.data(), ids.size(), &n), FKV_OK)
        << fkv_last_error();
    return ids;
  }

  static std::vector<float> logits_of(const fkv_context* c) {
    const float* p = nullptr;
    size_t n = 0;
    EXPECT_EQ(fkv_get_logits(c, &p, &n), FKV_OK) << fkv_last_error();
    return p ? std::vector<float>(p, p + n) : std::vector<float>();
  }

  static inline fkv_model* model_ = nullptr;
};

}  // namespace fkv::test
