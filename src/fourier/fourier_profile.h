// A Fourier profile: for every layer and KV head, which K dims and which V dims are compressed
// (../shared/FOURIER.md "Choosing the compressed dims"). Built by fkv-calibrate from a text (with the
// per-dim reconstruction errors it ranked by), or the built-in heuristic when a session has none.
#pragma once
#include <string>
#include <vector>

#include "backend/split_kv_layer.h"

namespace fkv {

struct FourierProfile {
  struct Layer {
    std::vector<std::vector<int>> k, v;  // [kv head] -> compressed dims, ascending
    // Calibration only: reconstruction MSE per [kv head][dim]; empty for the heuristic.
    std::vector<std::vector<double>> k_mse, v_mse;
  };
  int n_layers = 0, n_kv_heads = 0, head_dim = 0;
  std::string source;  // "heuristic" or what the calibration ran on
  std::vector<Layer> layers;

  double compressed_fraction() const;  // of all K and V dims of all layers and heads
};

// The fractions of a layer's K and V dims to compress. ratio >= 0: that fraction everywhere. ratio < 0: the
// reference's, scaled to the model's depth: the first round(L/7) layers 90% K / 95% V, the last round(2L/7)
// 50% K / 70% V, the others 80% (76% of all dims for 28 layers).
struct LayerFractions {
  double k = 0, v = 0;
};
LayerFractions layer_fractions(int layer, int n_layers, double ratio);

// The heuristic (no calibration data): K compresses whole RoPE pairs from dim 0 up, the highest
// frequencies; V, whose variances are unknown without data, keeps dims spread evenly across the head (as the
// reference's calibrated V profiles do) and compresses the others.
FourierProfile heuristic_fourier_profile(int n_layers, int n_kv_heads, int head_dim, double ratio);

// Re-chooses a calibrated profile's dims from its errors: per layer, all heads ranked together, the
// lowest-MSE fraction (layer_fractions) compressed. Throws kInvalidArgument when the profile has no errors.
void select_compressed_dims(FourierProfile& profile, double ratio);

// JSON (format "fkv-fourier-profile", version 1). load throws kIo / kBadFile naming the file and field;
// parse does the same for JSON text, naming `origin` (a file, or a model's metadata key).
void save_fourier_profile(const FourierProfile& profile, const std::string& path);
FourierProfile load_fourier_profile(const std::string& path);
std::string fourier_profile_json(const FourierProfile& profile);
FourierProfile parse_fourier_profile(const std::string& json_text, const std::string& origin);
// Throws kInvalidArgument when the profile was made for another shape (names the count that differs) or a
// dim list is out of range, unsorted or repeated.
void validate_fourier_profile(const FourierProfile& profile, int n_layers, int n_kv_heads, int head_dim);

// The split-cache dim layout of one layer's K or V from its compressed dims per head.
SplitKvDims split_dims(const std::vector<std::vector<int>>& compressed, int head_dim);

}  // namespace fkv
