// Bad arguments give a status and a message, never a crash: nulls, bad paths, absurd sizes, cancelled loads.
#include <cstring>

#include "api/api_test_util.h"

namespace fkv::test {
namespace {

TEST(CApiErrors, VersionAndStatusNames) {
  uint32_t v = 0;
  FKV_ASSERT_OK(fkv_api_version(&v));
  EXPECT_EQ(v, uint32_t(FKV_API_VERSION));
  EXPECT_STREQ(fkv_last_error(), "");
  EXPECT_STREQ(fkv_status_name(FKV_ERR_CONTEXT_FULL), "FKV_ERR_CONTEXT_FULL");
  EXPECT_STREQ(fkv_status_name(fkv_status(999)), "unknown");
  EXPECT_EQ(fkv_api_version(nullptr), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(fkv_last_error(), "out_version"), nullptr) << fkv_last_error();
}

TEST(CApiErrors, LoadRejectsNullsBadPathsAndUninitialisedOptions) {
  fkv_model* m = nullptr;
  EXPECT_EQ(fkv_model_load(nullptr, nullptr, &m), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), nullptr, nullptr), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_model_load("/nonexistent/model.gguf", nullptr, &m), FKV_ERR_IO);
  EXPECT_NE(std::strstr(fkv_last_error(), "/nonexistent/model.gguf"), nullptr) << fkv_last_error();
  EXPECT_EQ(m, nullptr);

  fkv_model_options o{};  // not through fkv_model_options_init
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), &o, &m), FKV_ERR_INVALID_ARGUMENT);
  fkv_model_options_init(&o);
  o.backend = "no-such-backend";
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), &o, &m), FKV_ERR_INVALID_ARGUMENT);
  fkv_model_options_init(&o);
  o.n_threads = -3;
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), &o, &m), FKV_ERR_INVALID_ARGUMENT);
  fkv_model_options_init(&o);
  o.context.kv_policy = "lossy-magic";
  o.backend = "cpu";
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), &o, &m), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(fkv_model_free(nullptr), FKV_OK);
}

TEST(CApiErrors, LoadOfANonModelFileIsBadFile) {
  fkv_model* m = nullptr;
  const std::string not_gguf = source_dir() + "/include/fkv.h";
  EXPECT_EQ(fkv_model_load(not_gguf.c_str(), nullptr, &m), FKV_ERR_BAD_FILE) << fkv_last_error();
  EXPECT_EQ(m, nullptr);
}

int cancel_after_first(float fraction, void* user) {
  auto* calls = static_cast<int*>(user);
  ++*calls;
  return fraction > 0.0f ? 1 : 0;  // cancel once loading has started
}

TEST(CApiErrors, ProgressCallbackCancelsTheLoad) {
  fkv_model_options o = cpu_model_options();
  int calls = 0;
  o.progress = cancel_after_first;
  o.progress_user_data = &calls;
  fkv_model* m = nullptr;
  EXPECT_EQ(fkv_model_load(default_model_path().c_str(), &o, &m), FKV_ERR_CANCELLED) << fkv_last_error();
  EXPECT_EQ(m, nullptr);
  EXPECT_GT(calls, 0);
}

class CApiBadArguments : public ApiTest {};

TEST_F(CApiBadArguments, ContextOptionsOutOfRange) {
  fkv_context* c = nullptr;
  EXPECT_EQ(fkv_context_create(nullptr, nullptr, &c), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_context_create(model_, nullptr, nullptr), FKV_ERR_INVALID_ARGUMENT);
  fkv_context_options o;
  fkv_context_options_init(&o);
  o.n_ctx = 1 << 30;  // far beyond what the model was trained for
  EXPECT_EQ(fkv_context_create(model_, &o, &c), FKV_ERR_INVALID_ARGUMENT) << fkv_last_error();
  o.n_ctx = -1;
  EXPECT_EQ(fkv_context_create(model_, &o, &c), FKV_ERR_INVALID_ARGUMENT);
  fkv_context_options_init(&o);
  o.kv_policy = "lossy-magic";
  EXPECT_EQ(fkv_context_create(model_, &o, &c), FKV_ERR_INVALID_ARGUMENT) << fkv_last_error();
  fkv_context_options_init(&o);
  o.struct_size = 3;
  EXPECT_EQ(fkv_context_create(model_, &o, &c), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(c, nullptr);
}

TEST_F(CApiBadArguments, EvaluationAndTextArguments) {
  fkv_context_options o;
  fkv_context_options_init(&o);
  o.n_ctx = 8;
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, &o, &c));

  const float* logits = nullptr;
  EXPECT_EQ(fkv_get_logits(c, &logits, nullptr), FKV_ERR_INVALID_ARGUMENT);  // nothing evaluated yet
  EXPECT_EQ(fkv_prefill(c, nullptr, 3), FKV_ERR_INVALID_ARGUMENT);
  const int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(fkv_prefill(c, ids, 0), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_prefill(c, ids, 9), FKV_ERR_CONTEXT_FULL);
  EXPECT_EQ(fkv_decode(c, -1), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_decode(c, 1 << 30), FKV_ERR_INVALID_ARGUMENT);
  int32_t n_past = -1;
  FKV_ASSERT_OK(fkv_context_get_position(c, &n_past, nullptr));
  EXPECT_EQ(n_past, 0);  // the failures evaluated nothing
  FKV_ASSERT_OK(fkv_prefill(c, ids, 8));
  EXPECT_EQ(fkv_decode(c, 1), FKV_ERR_CONTEXT_FULL);

  size_t n = 0;
  EXPECT_EQ(fkv_tokenize(model_, nullptr, 1, 0, nullptr, 0, &n), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_tokenize(model_, "hi", 1, 0, nullptr, 5, &n), FKV_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(fkv_tokenize(model_, "hello world", 0, 0, nullptr, 0, &n), FKV_ERR_BUFFER_TOO_SMALL);
  EXPECT_GE(n, 2u);
  const std::vector<int32_t> words = tokenize("hello world");
  char small[2];
  EXPECT_EQ(fkv_detokenize(model_, words.data(), words.size(), small, sizeof small, &n),
            FKV_ERR_BUFFER_TOO_SMALL);
  EXPECT_GE(n, 11u);
  const int32_t bad = 1 << 30;
  EXPECT_EQ(fkv_detokenize(model_, &bad, 1, nullptr, 0, &n), FKV_ERR_INVALID_ARGUMENT);
  const fkv_chat_message msg{"wizard", "hi"};
  EXPECT_EQ(fkv_apply_chat_template(model_, &msg, 1, 1, nullptr, 0, &n), FKV_ERR_INVALID_ARGUMENT);

  fkv_sampler* s = nullptr;
  fkv_sampler_options so{};
  EXPECT_EQ(fkv_sampler_create(&so, &s), FKV_ERR_INVALID_ARGUMENT);  // not initialised
  fkv_sampler_options_init(&so);
  so.top_p = -2;
  EXPECT_EQ(fkv_sampler_create(&so, &s), FKV_ERR_INVALID_ARGUMENT) << fkv_last_error();
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(fkv_generate(c, nullptr, nullptr, 0, 4, nullptr, nullptr, nullptr), FKV_ERR_INVALID_ARGUMENT);

  EXPECT_EQ(fkv_model_free(model_), FKV_ERR_INVALID_ARGUMENT);  // a context still uses it
  FKV_ASSERT_OK(fkv_context_free(c));
  EXPECT_EQ(fkv_context_free(nullptr), FKV_OK);
  EXPECT_EQ(fkv_sampler_free(nullptr), FKV_OK);
}

TEST_F(CApiBadArguments, CorruptStatesAreRejected) {
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &c));
  const int32_t ids[3] = {1, 2, 3};
  FKV_ASSERT_OK(fkv_prefill(c, ids, 3));
  size_t size = 0;
  EXPECT_EQ(fkv_state_save(c, nullptr, 0, &size), FKV_ERR_BUFFER_TOO_SMALL);
  std::vector<unsigned char> state(size);
  FKV_ASSERT_OK(fkv_state_save(c, state.data(), state.size(), &size));

  EXPECT_EQ(fkv_state_restore(c, state.data(), 5), FKV_ERR_BAD_FILE);
  EXPECT_EQ(fkv_state_restore(c, state.data(), state.size() - 1), FKV_ERR_BAD_FILE);
  std::vector<unsigned char> garbage(state);
  garbage[0] = 'X';
  EXPECT_EQ(fkv_state_restore(c, garbage.data(), garbage.size()), FKV_ERR_BAD_FILE);
  garbage = state;
  garbage.back() = 0x7f;  // the last token id becomes huge
  EXPECT_EQ(fkv_state_restore(c, garbage.data(), garbage.size()), FKV_ERR_BAD_FILE) << fkv_last_error();
  EXPECT_EQ(fkv_state_restore(c, nullptr, 10), FKV_ERR_INVALID_ARGUMENT);
  FKV_ASSERT_OK(fkv_state_restore(c, state.data(), state.size()));
  FKV_ASSERT_OK(fkv_context_free(c));
}

}  // namespace
}  // namespace fkv::test
