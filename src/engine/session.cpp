#include "engine/session.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>

#include "engine/sampler.h"
#include "util/error.h"

namespace fkv {

Session::Session(const LlamaModel& model, const SessionOptions& o)
    : model_(model), backend_(model.backend()) {
  const LlamaHparams& hp = model.hparams();
  require(o.ctx >= 0, ErrorCode::kInvalidArgument, "context length must not be negative");
  require(o.max_batch > 0, ErrorCode::kInvalidArgument, "max_batch must be positive");
  ctx_ = o.ctx > 0 ? o.ctx : std::min(hp.context_length, 8192);
  require(ctx_ <= hp.context_length, ErrorCode::kInvalidArgument,
          "context length " + std::to_string(ctx_) + " is longer than the model allows (" +
              std::to_string(hp.context_length) + ")");
  max_batch_ = std::min(o.max_batch, ctx_);
  kv_ = make_kv_cache(backend_, hp, o.kv, ctx_);

  const size_t b = size_t(max_batch_) * sizeof(float);
  const size_t q_dim = size_t(hp.n_heads) * hp.head_dim;
  tokens_ = backend_.alloc(size_t(max_batch_) * sizeof(int32_t), "token ids");
  x_ = backend_.alloc(b * hp.dim, "activations (residual)");
  xb_ = backend_.alloc(b * std::max<size_t>(hp.dim, q_dim), "activations (normed)");
  q_ = backend_.alloc(b * q_dim, "activations (q)");
  k_ = backend_.alloc(b * hp.kv_dim(), "activations (k)");
  v_ = backend_.alloc(b * hp.kv_dim(), "activations (v)");
  att_ = backend_.alloc(b * q_dim, "activations (attention)");
  hb_ = backend_.alloc(b * hp.ffn_dim, "activations (ffn gate)");
  hb2_ = backend_.alloc(b * hp.ffn_dim, "activations (ffn up)");
  last_ = backend_.alloc(sizeof(float) * hp.dim, "activations (last token)");
  logits_ = backend_.alloc(sizeof(float) * size_t(hp.vocab), "logits");
}

Session::~Session() = default;

void Session::reset() {
  n_past_ = 0;
  kv_->clear();
}

void Session::fill_synthetic(int n, uint64_t seed) {
  require(n >= 0 && n <= ctx_ - n_past_, ErrorCode::kContextFull,
          "synthetic fill of " + std::to_string(n) + " positions exceeds the context length " + std::to_string(ctx_));
  const LlamaHparams& hp = model_.hparams();
  const size_t count = size_t(max_batch_) * hp.kv_dim();
  std::vector<float> values(count);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& x : values) x = normal(rng);
  backend_.upload(*k_, 0, values.data(), count * sizeof(float));
  for (float& x : values) x = normal(rng);
  backend_.upload(*v_, 0, values.data(), count * sizeof(float));
  while (n > 0) {
    const int chunk = std::min(n, max_batch_);
    for (int l = 0; l < hp.n_layers; ++l) kv_->store(l, *k_, *v_, chunk, n_past_);
    n_past_ += chunk;
    n -= chunk;
  }
  kv_->flush();  // the last layer's chunk, before the next step's matmuls overwrite k_ and v_
  backend_.synchronize();
}

void Session::check_tokens(std::span<const int32_t> tokens) const {
  const int vocab = model_.hparams().vocab;
  require(!tokens.empty(), ErrorCode::kInvalidArgument, "eval needs at least one token");
  require(tokens.size() <= size_t(ctx_ - n_past_), ErrorCode::kContextFull,
          "context full: " + std::to_string(n_past_) + " + " + std::to_string(tokens.size()) +
              " tokens exceed the context length " + std::to_string(ctx_));
  for (int32_t id : tokens)
    require(id >= 0 && id < vocab, ErrorCode::kInvalidArgument,
            "token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(vocab) + ")");
}

void Session::forward(std::span<const int32_t> tokens, bool all_logits, float* out) {
  const size_t vocab = size_t(model_.hparams().vocab);
  for (size_t start = 0; start < tokens.size(); start += size_t(max_batch_)) {
    const size_t n = std::min(tokens.size() - start, size_t(max_batch_));
    const bool last = start + n == tokens.size();
    float* chunk_out = !out || !(all_logits || last) ? nullptr : all_logits ? out + start * vocab : out;
    forward_chunk(tokens.subspan(start, n), all_logits, chunk_out, last);
  }
}

int32_t Session::eval_argmax(std::span<const int32_t> tokens) {
  check_tokens(tokens);
  const int vocab = model_.hparams().vocab;
  forward(tokens, false, nullptr);
  if (const std::optional<int32_t> id = backend_.argmax(*logits_, vocab)) return *id;
  logits_host_.resize(size_t(vocab));
  backend_.download(*logits_, 0, logits_host_.data(), size_t(vocab) * sizeof(float));
  return Sampler::argmax(logits_host_.data(), vocab);
}

const std::vector<float>& Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int vocab = model_.hparams().vocab;
  check_tokens(tokens);
  // Every value is written by the read-back below (resize, not assign: a token's 0.5 MB memset is time the
  // GPU waits for).
  logits_host_.resize(all_logits ? tokens.size() * size_t(vocab) : size_t(vocab));
  forward(tokens, all_logits, logits_host_.data());
  return logits_host_;
}

void Session::report_hidden(int layer, int n) {
  if (!on_hidden) return;
  const int dim = model_.hparams().dim;
  hidden_host_.resize(size_t(n) * dim);
  backend_.download(*x_, 0, hidden_host_.data(), hidden_host_.size() * sizeof(float));
  on_hidden(layer, hidden_host_.data(), n, dim);
}

void Session::report_kv(int layer, int n, int pos0) {
  if (!on_kv) return;
  const size_t count = size_t(n) * model_.hparams().kv_dim();
  k_host_.resize(count);
  v_host_.resize(count);
  backend_.download(*k_, 0, k_host_.data(), count * sizeof(float));
  backend_.download(*v_, 0, v_host_.data(), count * sizeof(float));
  on_kv(layer, k_host_.data(), v_host_.data(), n, pos0);
}

void Session::forward_chunk(std::span<const int32_t> tokens, bool all_logits, float* logits_out,
                            bool last_on_device) {
  const LlamaHparams& hp = model_.hparams();
  const int n = int(tokens.size());
  const int pos0 = n_past_;
  Backend& be = backend_;

  be.upload(*tokens_, 0, tokens.data(), tokens.size_bytes());
  be.begin_step(pos0, n);  // everything below writes its activations before reading them
  be.embed(model_.token_embedding(), *tokens_, n, *x_);
  report_hidden(-1, n);
  for (int l = 0; l < hp.n_layers; ++l) {
    const LayerWeights& w = model_.layer(l);
    be.rms_norm(*x_, *w.attn_norm, n, hp.dim, hp.rms_eps, *xb_);
    be.matmul(w.wq, *xb_, n, *q_);
    be.matmul(w.wk, *xb_, n, *k_);
    be.matmul(w.wv, *xb_, n, *v_);
    be.rope(*q_, n, hp.n_heads, pos0, hp.rope);
    be.rope(*k_, n, hp.n_kv_heads, pos0, hp.rope);
    report_kv(l, n, pos0);
    kv_->store(l, *k_, *v_, n, pos0);
    kv_->attend(l, *q_, n, pos0, *att_);
    be.matmul(w.wo, *att_, n, *xb_);
    be.add(*x_, *xb_, int64_t(n) * hp.dim, *x_);

    be.rms_norm(*x_, *w.ffn_norm, n, hp.dim, hp.rms_eps, *xb_);
    be.matmul(w.w_gate, *xb_, n, *hb_);
    be.matmul(w.w_up, *xb_, n, *hb2_);
    be.swiglu(*hb_, *hb2_, int64_t(n) * hp.ffn_dim, *hb_);
    // The cache's append of this layer's k and v (a split cache's ring and middle updates), recorded here
    // rather than right after the attention: beside the gate/up matvec on a GPU instead of delaying the
    // output projection. Before the next layer's matmuls overwrite k_ and v_.
    kv_->flush();
    be.matmul(w.w_down, *hb_, n, *xb_);
    be.add(*x_, *xb_, int64_t(n) * hp.dim, *x_);
    report_hidden(l, n);
  }
  n_past_ += n;
  if (!logits_out && !last_on_device) return;

  const size_t vocab = size_t(hp.vocab);
  if (all_logits) {
    if (!logits_all_)
      logits_all_ = be.alloc(size_t(max_batch_) * vocab * sizeof(float), "logits (all positions)");
    be.rms_norm(*x_, model_.output_norm(), n, hp.dim, hp.rms_eps, *xb_);
    be.matmul(model_.output(), *xb_, n, *logits_all_);
    be.download(*logits_all_, 0, logits_out, size_t(n) * vocab * sizeof(float));
    return;
  }
  be.copy(*x_, size_t(n - 1) * hp.dim * sizeof(float), *last_, 0, size_t(hp.dim) * sizeof(float));
  be.rms_norm(*last_, model_.output_norm(), 1, hp.dim, hp.rms_eps, *xb_);
  be.matmul(model_.output(), *xb_, 1, *logits_);
  if (logits_out) be.download(*logits_, 0, logits_out, vocab * sizeof(float));
}

}  // namespace fkv
