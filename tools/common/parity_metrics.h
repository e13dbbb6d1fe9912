// How far a test tensor is from a reference one: the numbers fkv-parity reports per layer and for the
// final logits. Rows are tokens ([n, dim] row-major).
#pragma once
#include <cstddef>
#include <vector>

namespace fkv::tools {

struct ParityMetrics {
  double max_abs = 0;     // max |a - b|
  double max_rel = 0;     // max |a - b| / (|a| + 0.01 rms(a)): relative, bounded where a crosses zero
  double min_cosine = 1;  // the lowest cosine similarity of a token's row pair
  double nmse = 0;        // sum (a - b)^2 / sum a^2 (llama.cpp's test-backend-ops metric)
  // Logits only (rows = positions, cols = vocabulary):
  double argmax_agreement = 1;  // fraction of positions whose argmax agree
  double kl = 0;                // mean over positions of KL(softmax(a) || softmax(b)), nats
  double max_kl = 0;            // the worst position's KL
};

// a: reference, b: test; both [rows, cols]. Sizes must match (else std::invalid_argument).
ParityMetrics compare_tensors(const std::vector<float>& a, const std::vector<float>& b, size_t rows,
                              size_t cols);

// Adds argmax agreement and KL divergence, treating rows as logits over cols classes.
void add_logit_metrics(ParityMetrics& m, const std::vector<float>& a, const std::vector<float>& b,
                       size_t rows, size_t cols);

}  // namespace fkv::tools
