// A session: one conversation's KV cache and position on a loaded model, and the LLaMA forward pass that
// drives the backend op by op (prefill in chunks, decode one token at a time).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kv/kv_options.h"
#include "model/llama_model.h"

namespace fkv {

struct SessionOptions {
  int ctx = 0;          // positions the session may reach; 0: the model's context length, at most 8192
  int max_batch = 256;  // prefill chunk
  KvOptions kv;
};

// Called after each layer (and once after the embedding, layer = -1) with the residual stream [n, dim],
// downloaded to the host. For the parity runner; slows the forward pass down.
using HiddenStateHook = std::function<void(int layer, const float* hidden, int n, int dim)>;
// Called in each layer with the k (after RoPE) and v about to be stored in the KV cache, fp32
// [n, n_kv_heads, head_dim] each, positions pos0 .., downloaded to the host. For fkv-calibrate and KV tests.
using KvHook = std::function<void(int layer, const float* k, const float* v, int n, int pos0)>;

class Session {
 public:
  Session(const LlamaModel& model, const SessionOptions& options);
  ~Session();

  // Runs tokens at positions n_past() ..; returns the logits of the last token ([vocab]) or, with
  // all_logits, of every token ([n, vocab]). Throws kContextFull when the tokens do not fit (nothing runs),
  // kInvalidArgument for an id outside the vocabulary.
  const std::vector<float>& eval(std::span<const int32_t> tokens, bool all_logits = false);
  // Greedy decoding: runs tokens as eval does and returns the id of the last token's largest logit
  // (Sampler::argmax's choice). Where the backend takes the argmax on the device (Backend::argmax) only the
  // id is read back, and the logits eval returns are not updated.
  int32_t eval_argmax(std::span<const int32_t> tokens);

  int n_past() const { return n_past_; }
  int ctx() const { return ctx_; }
  void reset();  // a new conversation
  // For benchmarks: advances the session by n positions whose K/V are pseudo-random values stored through
  // the KV policy, without a forward pass. Decode cost depends on how much the cache holds, not on the
  // values, so this reaches a deep context in a fraction of a real prefill's time.
  void fill_synthetic(int n, uint64_t seed);
  KvMemoryReport kv_memory() const { return kv_->memory(n_past_); }
  const KvCache& kv_cache() const { return *kv_; }
  const LlamaModel& model() const { return model_; }

  HiddenStateHook on_hidden;
  KvHook on_kv;

 private:
  void check_tokens(std::span<const int32_t> tokens) const;
  // Runs tokens in chunks of at most max_batch_. out: every token's logits ([n, vocab], all_logits) or the
  // last token's; null: the last token's logits stay in logits_ only.
  void forward(std::span<const int32_t> tokens, bool all_logits, float* out);
  // last_on_device: the last token's logits are left in logits_ even when logits_out is null.
  void forward_chunk(std::span<const int32_t> tokens, bool all_logits, float* logits_out,
                     bool last_on_device);
  void report_hidden(int layer, int n);
  void report_kv(int layer, int n, int pos0);

  const LlamaModel& model_;
  Backend& backend_;
  int ctx_ = 0;
  int max_batch_ = 0;
  int n_past_ = 0;
  std::unique_ptr<KvCache> kv_;
  // Activations, sized for max_batch tokens.
  BufferPtr tokens_, x_, xb_, q_, k_, v_, att_, hb_, hb2_, last_, logits_;
  BufferPtr logits_all_;  // [max_batch, vocab], allocated on the first all_logits eval
  std::vector<float> logits_host_;
  std::vector<float> hidden_host_;
  std::vector<float> k_host_, v_host_;
};

}  // namespace fkv
