#include "model/llama_model.h"

#include <vector>

#include "gguf/gguf_reader.h"
#include "model/quant.h"
#include "util/error.h"

namespace fkv {
namespace {

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

const GgufTensorInfo& find(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  require(t != nullptr, ErrorCode::kBadFile, f.path() + ": missing tensor " + name);
  return *t;
}

}  // namespace

Weight LlamaModel::upload_matrix(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo& t = find(f, name);
  require(t.dims.size() == 2 && t.dims[0] == cols && t.dims[1] == rows, ErrorCode::kBadFile,
          "tensor " + name + " has shape " + shape_text(t.dims) + ", expected [" + std::to_string(cols) + ", " +
              std::to_string(rows) + "]");
  BufferPtr buf = backend_->alloc(t.n_bytes, "weight " + name);
  const Weight w{buf.get(), t.type, rows, cols};
  backend_->upload_weight(w, t.data, t.n_bytes);
  buffers_.push_back(buf);
  weight_bytes_ += t.n_bytes;
  return w;
}

BufferPtr LlamaModel::upload_norm(const GgufFile& f, const std::string& name, int64_t dim) {
  const GgufTensorInfo& t = find(f, name);
  require(t.dims.size() == 1 && t.dims[0] == dim, ErrorCode::kBadFile,
          "tensor " + name + " has shape " + shape_text(t.dims) + ", expected [" + std::to_string(dim) + "]");
  std::vector<float> values(static_cast<size_t>(dim));
  dequantize_row(t.type, t.data, values.data(), dim);
  BufferPtr buf = backend_->alloc(values.size() * sizeof(float), "weight " + name);
  backend_->upload(*buf, 0, values.data(), values.size() * sizeof(float));
  buffers_.push_back(buf);
  weight_bytes_ += values.size() * sizeof(float);
  return buf;
}

std::unique_ptr<LlamaModel> LlamaModel::load(const GgufFile& f, Backend& backend, const LoadProgress& progress) {
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->hp_ = read_llama_hparams(f);
  m->backend_ = &backend;
  const LlamaHparams& hp = m->hp_;
  const int64_t q_dim = int64_t(hp.n_heads) * hp.head_dim;
  auto report = [&](float fraction) {
    if (progress && !progress(fraction)) throw Error(ErrorCode::kCancelled, "model load cancelled");
  };
  report(0.0f);
  m->tok_embd_ = m->upload_matrix(f, "token_embd.weight", hp.vocab, hp.dim);
  m->output_ = hp.tied_output ? m->tok_embd_ : m->upload_matrix(f, "output.weight", hp.vocab, hp.dim);
  m->output_norm_ = m->upload_norm(f, "output_norm.weight", hp.dim);
  for (int l = 0; l < hp.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = m->upload_norm(f, p + "attn_norm.weight", hp.dim);
    w.wq = m->upload_matrix(f, p + "attn_q.weight", q_dim, hp.dim);
    w.wk = m->upload_matrix(f, p + "attn_k.weight", hp.kv_dim(), hp.dim);
    w.wv = m->upload_matrix(f, p + "attn_v.weight", hp.kv_dim(), hp.dim);
    w.wo = m->upload_matrix(f, p + "attn_output.weight", hp.dim, q_dim);
    w.ffn_norm = m->upload_norm(f, p + "ffn_norm.weight", hp.dim);
    w.w_gate = m->upload_matrix(f, p + "ffn_gate.weight", hp.ffn_dim, hp.dim);
    w.w_up = m->upload_matrix(f, p + "ffn_up.weight", hp.ffn_dim, hp.dim);
    w.w_down = m->upload_matrix(f, p + "ffn_down.weight", hp.dim, hp.ffn_dim);
    m->layers_.push_back(w);
    report(float(l + 1) / float(hp.n_layers));
  }
  backend.synchronize();
  return m;
}

}  // namespace fkv
