// A session's KV cache policy and its budget, as chosen on the command line or through the C API.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "kv/kv_cache.h"

namespace fkv {

struct LlamaHparams;

struct KvOptions {
  std::string policy = "full";  // full | window | fourier
  KvType type = KvType::kF16;   // exact parts' storage; kF32 is a test option
  int sink = 4;
  int window = 1020;
  int fourier_n = 512;
  double fourier_ratio = -1;  // <0: the profile's own fractions
  // JSON from fkv-calibrate; empty: the profile stored in the model file if it has one, else the built-in
  // heuristic; "heuristic": the heuristic even when the model file has a profile.
  std::string fourier_profile;
  // fkv's rule for a middle that forms gradually (chunked prefill, decode): its compressed dims stay exact
  // until it holds min(T, fourier_fit_tokens) tokens, then the range normalisation is fitted on those.
  int fourier_fit_tokens = 256;
  std::string fourier_path = "auto";  // split attention: reference | fused | spectral | auto
  // How x̂ = a·x̃ + b is fitted: lsq (fkv's default: least-squares a, b, docs/FOURIER-IMPL.md) | range
  // (FOURIER.md's a = ρ/ρ̃, much worse on the models measured: docs/ACCURACY.md).
  std::string fourier_norm = "lsq";
};

// Builds the policy's cache for a session of `capacity` positions. Throws fkv::Error (kInvalidArgument for
// an unknown policy or inconsistent budget, kUnsupported for a policy this build does not have yet).
// "reference" | "fused" | "spectral" | "auto" -> the path; anything else: kInvalidArgument.
SplitAttentionPath parse_split_path(const std::string& name);

std::unique_ptr<KvCache> make_kv_cache(Backend& backend, const LlamaHparams& hp, const KvOptions& options,
                                       int capacity);

}  // namespace fkv
