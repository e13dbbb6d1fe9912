// Device memory a session takes besides weights and KV cache: its activation buffers. Mirrors the
// allocations in src/engine/session.cpp; an estimate for reports, not an allocator.
#pragma once
#include <cstddef>

#include "model/llama_hparams.h"

namespace fkv::tools {

// Activations for prefill chunks of max_batch tokens; with_all_logits adds the [max_batch, vocab] buffer
// that all-position logits (perplexity) allocate.
size_t activation_bytes_estimate(const LlamaHparams& hp, int max_batch, bool with_all_logits = false);

}  // namespace fkv::tools
