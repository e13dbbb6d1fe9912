// The C API end to end on the default model: load, tokenize, evaluate, sample, stream, report memory,
// save and restore, two contexts on one model.
#include <cstring>
#include <string>

#include "api/api_test_util.h"

namespace fkv::test {
namespace {

class CApiLifecycle : public ApiTest {};

TEST_F(CApiLifecycle, InfoDescribesTheModel) {
  fkv_model_info info;
  FKV_ASSERT_OK(fkv_model_get_info(model_, &info));
  EXPECT_EQ(info.n_layers, 30);
  EXPECT_EQ(info.n_heads, 9);
  EXPECT_EQ(info.n_kv_heads, 3);
  EXPECT_EQ(info.head_dim, 64);
  EXPECT_EQ(info.has_tokenizer, 1);
  EXPECT_GT(info.weight_bytes, 50u << 20);
  EXPECT_STREQ(info.backend, "cpu");
  EXPECT_STREQ(info.chat_template, "chatml");
}

TEST_F(CApiLifecycle, TextRoundTripsAndTheTemplateRenders) {
  const std::string text = "The quick brown fox.";
  size_t n = 0;
  ASSERT_EQ(fkv_tokenize(model_, text.c_str(), 0, 0, nullptr, 0, &n), FKV_ERR_BUFFER_TOO_SMALL);
  std::vector<int32_t> ids(n);
  FKV_ASSERT_OK(fkv_tokenize(model_, text.c_str(), 0, 0, ids.data(), ids.size(), &n));
  size_t len = 0;
  ASSERT_EQ(fkv_detokenize(model_, ids.data(), ids.size(), nullptr, 0, &len), FKV_ERR_BUFFER_TOO_SMALL);
  std::string back(len + 1, '\0');
  FKV_ASSERT_OK(fkv_detokenize(model_, ids.data(), ids.size(), back.data(), back.size(), &len));
  back.resize(len);
  EXPECT_EQ(back, text);

  const fkv_chat_message msgs[2] = {{"system", "Be brief."}, {"user", "Hi"}};
  ASSERT_EQ(fkv_apply_chat_template(model_, msgs, 2, 1, nullptr, 0, &len), FKV_ERR_BUFFER_TOO_SMALL);
  std::string rendered(len + 1, '\0');
  FKV_ASSERT_OK(fkv_apply_chat_template(model_, msgs, 2, 1, rendered.data(), rendered.size(), &len));
  rendered.resize(len);
  EXPECT_NE(rendered.find("<|im_start|>user"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("Hi"), std::string::npos) << rendered;

  fkv_model_info info;
  FKV_ASSERT_OK(fkv_model_get_info(model_, &info));
  int is_end = -1;
  if (info.eos_token >= 0) {
    FKV_ASSERT_OK(fkv_token_is_end(model_, info.eos_token, &is_end));
    EXPECT_EQ(is_end, 1);
  }
}

TEST_F(CApiLifecycle, PrefillDecodeSampleAndReport) {
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &c));
  const std::vector<int32_t> prompt = tokenize("The capital of France is");
  FKV_ASSERT_OK(fkv_prefill(c, prompt.data(), prompt.size()));
  const float* logits = nullptr;
  size_t n_vocab = 0;
  FKV_ASSERT_OK(fkv_get_logits(c, &logits, &n_vocab));
  EXPECT_EQ(n_vocab, 49152u);

  fkv_sampler_options so;
  fkv_sampler_options_init(&so);
  so.temperature = 0;
  fkv_sampler* s = nullptr;
  FKV_ASSERT_OK(fkv_sampler_create(&so, &s));
  int32_t next = -1;
  FKV_ASSERT_OK(fkv_sample(s, c, &next));
  FKV_ASSERT_OK(fkv_decode(c, next));
  int32_t n_past = 0, n_ctx = 0;
  FKV_ASSERT_OK(fkv_context_get_position(c, &n_past, &n_ctx));
  EXPECT_EQ(n_past, int32_t(prompt.size() + 1));
  EXPECT_EQ(n_ctx, 256);

  fkv_memory_report mem;
  FKV_ASSERT_OK(fkv_context_memory(c, &mem));
  EXPECT_GT(mem.weight_bytes, 0u);
  EXPECT_GT(mem.kv_allocated_bytes, 0u);
  // Full cache: every token's K and V rows, f16, in the window part.
  EXPECT_EQ(mem.kv_window_bytes, uint64_t(n_past) * 30 * 2 * 3 * 64 * 2);
  EXPECT_EQ(mem.kv_used_bytes,
            mem.kv_window_bytes + mem.kv_sink_bytes + mem.kv_middle_kept_bytes + mem.kv_coefficient_bytes);
  fkv_kv_info kv;
  FKV_ASSERT_OK(fkv_context_kv_info(c, &kv));
  EXPECT_STREQ(kv.policy, "full");
  EXPECT_EQ(kv.exact, 1);
  EXPECT_EQ(kv.can_shift_positions, 0);
  EXPECT_EQ(kv.capacity, 256);

  FKV_ASSERT_OK(fkv_context_reset(c));
  FKV_ASSERT_OK(fkv_context_get_position(c, &n_past, nullptr));
  EXPECT_EQ(n_past, 0);
  EXPECT_EQ(fkv_get_logits(c, &logits, nullptr), FKV_ERR_INVALID_ARGUMENT);
  FKV_ASSERT_OK(fkv_sampler_free(s));
  FKV_ASSERT_OK(fkv_context_free(c));
}

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  int stop_after = 0;
};

int collect(int32_t token, const char* text, size_t length, void* user) {
  auto* c = static_cast<Collected*>(user);
  c->tokens.push_back(token);
  c->text.append(text, length);
  return int(c->tokens.size()) >= c->stop_after ? 1 : 0;
}

TEST_F(CApiLifecycle, GenerateStreamsAndStopsWhenAsked) {
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &c));
  fkv_sampler_options so;
  fkv_sampler_options_init(&so);
  so.temperature = 0;
  fkv_sampler* s = nullptr;
  FKV_ASSERT_OK(fkv_sampler_create(&so, &s));
  const std::vector<int32_t> prompt = tokenize("One, two, three,");
  Collected got;
  got.stop_after = 3;
  int32_t n = 0;
  FKV_ASSERT_OK(fkv_generate(c, s, prompt.data(), prompt.size(), 20, collect, &got, &n));
  EXPECT_EQ(n, 3);
  ASSERT_EQ(got.tokens.size(), 3u);
  EXPECT_FALSE(got.text.empty());
  int32_t n_past = 0;
  FKV_ASSERT_OK(fkv_context_get_position(c, &n_past, nullptr));
  EXPECT_EQ(n_past, int32_t(prompt.size() + 2));  // the stopping token is reported, not evaluated

  // Continue the same reply without a new prompt: the same greedy tokens as one uninterrupted run.
  Collected more;
  more.stop_after = 100;
  FKV_ASSERT_OK(fkv_decode(c, got.tokens.back()));
  FKV_ASSERT_OK(fkv_generate(c, s, nullptr, 0, 2, collect, &more, &n));
  EXPECT_EQ(n, 2);
  FKV_ASSERT_OK(fkv_sampler_free(s));
  FKV_ASSERT_OK(fkv_context_free(c));
}

TEST_F(CApiLifecycle, TwoContextsOnOneModelAreIndependent) {
  fkv_context* a = nullptr;
  fkv_context* b = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &a));
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &b));
  const std::vector<int32_t> p1 = tokenize("Roses are red,");
  const std::vector<int32_t> p2 = tokenize("In 1492, Columbus");
  FKV_ASSERT_OK(fkv_prefill(a, p1.data(), p1.size()));
  FKV_ASSERT_OK(fkv_prefill(b, p2.data(), p2.size()));
  FKV_ASSERT_OK(fkv_decode(a, 11));
  const std::vector<float> a_logits = logits_of(a);
  FKV_ASSERT_OK(fkv_decode(b, 11));

  // Interleaving with b changed nothing in a: the same calls on a fresh context agree exactly.
  fkv_context* fresh = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &fresh));
  FKV_ASSERT_OK(fkv_prefill(fresh, p1.data(), p1.size()));
  FKV_ASSERT_OK(fkv_decode(fresh, 11));
  EXPECT_EQ(logits_of(fresh), a_logits);
  EXPECT_NE(logits_of(b), a_logits);
  FKV_ASSERT_OK(fkv_context_free(fresh));
  FKV_ASSERT_OK(fkv_context_free(a));
  FKV_ASSERT_OK(fkv_context_free(b));
}

TEST_F(CApiLifecycle, SaveAndRestoreGiveTheSameNextLogits) {
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &c));
  const std::vector<int32_t> prompt = tokenize("Once upon a time");
  FKV_ASSERT_OK(fkv_prefill(c, prompt.data(), prompt.size()));
  FKV_ASSERT_OK(fkv_decode(c, 28));
  FKV_ASSERT_OK(fkv_decode(c, 253));
  const std::vector<float> saved_logits = logits_of(c);
  size_t size = 0;
  ASSERT_EQ(fkv_state_save(c, nullptr, 0, &size), FKV_ERR_BUFFER_TOO_SMALL);
  std::vector<unsigned char> state(size);
  FKV_ASSERT_OK(fkv_state_save(c, state.data(), state.size(), &size));
  FKV_ASSERT_OK(fkv_decode(c, 1001));
  const std::vector<float> next = logits_of(c);

  // Into a fresh context of the same model ...
  fkv_context* other = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, nullptr, &other));
  FKV_ASSERT_OK(fkv_state_restore(other, state.data(), state.size()));
  EXPECT_EQ(logits_of(other), saved_logits);
  FKV_ASSERT_OK(fkv_decode(other, 1001));
  EXPECT_EQ(logits_of(other), next);
  // ... and back into the original, which had moved on.
  FKV_ASSERT_OK(fkv_state_restore(c, state.data(), state.size()));
  int32_t n_past = 0;
  FKV_ASSERT_OK(fkv_context_get_position(c, &n_past, nullptr));
  EXPECT_EQ(n_past, int32_t(prompt.size() + 2));
  FKV_ASSERT_OK(fkv_decode(c, 1001));
  EXPECT_EQ(logits_of(c), next);

  // A context too short for the state refuses it.
  fkv_context_options small;
  fkv_context_options_init(&small);
  small.n_ctx = 4;
  fkv_context* tiny = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, &small, &tiny));
  EXPECT_EQ(fkv_state_restore(tiny, state.data(), state.size()), FKV_ERR_CONTEXT_FULL);
  FKV_ASSERT_OK(fkv_context_free(tiny));
  FKV_ASSERT_OK(fkv_context_free(other));
  FKV_ASSERT_OK(fkv_context_free(c));
}

// Compressed policies keep state that depends on how tokens arrived (the Fourier fit happens once enough
// middle tokens exist); a restore replays the same evaluations, so it must still match exactly.
class CApiPolicies : public ApiTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(CApiPolicies, SaveAndRestoreMatchAndMemoryIsReportedByPart) {
  fkv_context_options o;
  fkv_context_options_init(&o);
  o.n_ctx = 96;
  o.kv_policy = GetParam();
  o.kv_sink = 4;
  o.kv_window = 16;
  o.fourier_n = 16;
  o.fourier_fit_tokens = 8;
  fkv_context* c = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, &o, &c));
  fkv_kv_info kv;
  FKV_ASSERT_OK(fkv_context_kv_info(c, &kv));
  EXPECT_STREQ(kv.policy, GetParam());
  EXPECT_EQ(kv.exact, 0);
  EXPECT_EQ(kv.can_shift_positions, 0);

  const std::vector<int32_t> prompt = tokenize(
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
      "foolishness, it was the epoch of belief, it was the epoch of incredulity.");
  ASSERT_GT(prompt.size(), 30u);  // past sink + window: the middle is in play
  FKV_ASSERT_OK(fkv_prefill(c, prompt.data(), 20));
  FKV_ASSERT_OK(fkv_prefill(c, prompt.data() + 20, prompt.size() - 20));
  FKV_ASSERT_OK(fkv_decode(c, 13));
  size_t size = 0;
  ASSERT_EQ(fkv_state_save(c, nullptr, 0, &size), FKV_ERR_BUFFER_TOO_SMALL);
  std::vector<unsigned char> state(size);
  FKV_ASSERT_OK(fkv_state_save(c, state.data(), state.size(), &size));
  FKV_ASSERT_OK(fkv_decode(c, 42));
  const std::vector<float> next = logits_of(c);

  fkv_memory_report mem;
  FKV_ASSERT_OK(fkv_context_memory(c, &mem));
  EXPECT_EQ(mem.kv_window_bytes, uint64_t(16) * 30 * 2 * 3 * 64 * 2);  // exactly the window's rows
  EXPECT_EQ(mem.kv_sink_bytes, uint64_t(4) * 30 * 2 * 3 * 64 * 2);
  EXPECT_EQ(mem.kv_used_bytes, mem.kv_window_bytes + mem.kv_sink_bytes + mem.kv_middle_kept_bytes +
                                   mem.kv_coefficient_bytes + mem.kv_middle_pending_bytes);

  fkv_context* other = nullptr;
  FKV_ASSERT_OK(fkv_context_create(model_, &o, &other));
  FKV_ASSERT_OK(fkv_state_restore(other, state.data(), state.size()));
  FKV_ASSERT_OK(fkv_decode(other, 42));
  EXPECT_EQ(logits_of(other), next);
  FKV_ASSERT_OK(fkv_context_free(other));
  FKV_ASSERT_OK(fkv_context_free(c));
}

INSTANTIATE_TEST_SUITE_P(WindowAndFourier, CApiPolicies, ::testing::Values("window", "fourier"));

}  // namespace
}  // namespace fkv::test
