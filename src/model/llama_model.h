// A LLaMA model's weights, uploaded to one backend.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/llama_hparams.h"

namespace fkv {

class GgufFile;

struct LayerWeights {
  BufferPtr attn_norm, ffn_norm;  // fp32 [dim]
  Weight wq, wk, wv, wo;          // [dim, dim], [kv_dim, dim], [kv_dim, dim], [dim, dim] (rows, cols)
  Weight w_gate, w_up, w_down;    // [ffn, dim], [ffn, dim], [dim, ffn]
};

// Called with the fraction loaded (0..1); returning false cancels the load (fkv::Error kCancelled).
using LoadProgress = std::function<bool(float)>;

class LlamaModel {
 public:
  // Validates every tensor's shape and type, then uploads the weights. The file may be closed afterwards.
  static std::unique_ptr<LlamaModel> load(const GgufFile& file, Backend& backend,
                                          const LoadProgress& progress = nullptr);

  const LlamaHparams& hparams() const { return hp_; }
  Backend& backend() const { return *backend_; }
  const Weight& token_embedding() const { return tok_embd_; }
  const Weight& output() const { return output_; }  // the token embedding when tied
  const DeviceBuffer& output_norm() const { return *output_norm_; }
  const LayerWeights& layer(int i) const { return layers_[size_t(i)]; }
  size_t weight_bytes() const { return weight_bytes_; }

 private:
  LlamaModel() = default;
  Weight upload_matrix(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols);
  BufferPtr upload_norm(const GgufFile& f, const std::string& name, int64_t dim);

  LlamaHparams hp_;
  Backend* backend_ = nullptr;
  std::vector<BufferPtr> buffers_;  // owns every weight buffer
  Weight tok_embd_, output_;
  BufferPtr output_norm_;
  std::vector<LayerWeights> layers_;
  size_t weight_bytes_ = 0;
};

}  // namespace fkv
