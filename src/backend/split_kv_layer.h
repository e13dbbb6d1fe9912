// One layer's split KV cache as the backend ops see it: the layout behind the `window` and `fourier` policies
// (../shared/FOURIER.md, docs/FOURIER-IMPL.md). Separate from backend.h so that the interface stays short.
//
// Positions 0 .. t-1 stored (t = the op's pos0) fall into three parts:
//   sink    [0, min(S, t))               all dims exact, rows `sink`
//   middle  [S, S + M), M = middle_len(t) kept dims exact (rows `kept`); compressed dims either exact
//                                        (rows `pending`, while M < fit_tokens) or as 2N Fourier coefficients
//                                        (`coef`) with range normalisation (`norm`) once M >= fit_tokens,
//                                        refitted over the whole middle each time M reaches fit_tokens·2^k
//   window  [max(S, t - W), t)           all dims exact, ring `window`: position p at row (p - S) % W
// With middle == 0 (the window policy) positions in [S, t - W) are dropped. Everything is a function of t.
#pragma once
#include <algorithm>
#include <vector>

namespace fkv {

class DeviceBuffer;
enum class KvType;

// Floats per compressed dim in SplitKvPart::norm.
constexpr int kSplitNormStride = 8;

// Which dims of each KV head are kept exact and which are compressed, for K or for V of one layer. Dims are
// indices within a head, ascending in each list; kept and compressed lists of a head partition 0 ..
// head_dim-1.
struct SplitKvDims {
  std::vector<int> keep_offset;  // [n_kv_heads + 1]: head h's kept dims are keep[keep_offset[h] ..
  std::vector<int> keep;         //   keep_offset[h+1])
  std::vector<int> comp_offset;  // [n_kv_heads + 1], the same for compressed dims
  std::vector<int> comp;
  int n_keep() const { return keep_offset.empty() ? 0 : keep_offset.back(); }
  int n_comp() const { return comp_offset.empty() ? 0 : comp_offset.back(); }

  // SplitKvPart::dims_table's contents: keep_offset, comp_offset, keep, comp, then each kept and each
  // compressed entry's element in a cache row (head · head_dim + dim), so that device code finds an entry's
  // element with one read instead of a search of the offsets.
  std::vector<int> device_table(int head_dim) const {
    std::vector<int> t;
    for (const auto* v : {&keep_offset, &comp_offset, &keep, &comp}) t.insert(t.end(), v->begin(), v->end());
    for (const auto* off : {&keep_offset, &comp_offset}) {
      const std::vector<int>& list = off == &keep_offset ? keep : comp;
      for (size_t h = 0; h + 1 < off->size(); ++h)
        for (int i = (*off)[h]; i < (*off)[h + 1]; ++i) t.push_back(int(h) * head_dim + list[size_t(i)]);
    }
    return t;
  }
};

// Elements a kept row takes in SplitKvPart::kept's allocation: n_keep rounded up to even, so that a backend
// may store a row as whole 32-bit words of f16 pairs.
constexpr int split_kept_row_elements(int n_keep) {
  return (n_keep + 1) / 2 * 2;
}

struct SplitKvPart {
  DeviceBuffer* sink = nullptr;    // [S, n_kv_heads * head_dim] in `type`
  DeviceBuffer* window = nullptr;  // [W, n_kv_heads * head_dim] in `type` (ring)
  // T rows of n_keep kept dims in `type` (middle position m's kept dims, head after head), room for
  // T · split_kept_row_elements(n_keep) elements. [T, n_keep] on the CPU and CUDA; the Vulkan backend stores
  // K's by columns (backend/vulkan/vulkan_kept_layout.h), which only its own kernels read and write.
  DeviceBuffer* kept = nullptr;
  DeviceBuffer* pending =
      nullptr;                   // fp32 [fit_tokens, n_comp]: compressed dims of middle rows before the fit
  DeviceBuffer* coef = nullptr;  // fp32 [n_comp, 2N]: C_c[0..N) then S_c[0..N) per compressed dim c
  // fp32 [n_comp, kSplitNormStride]: μ, ρ, μ̃, ρ̃ (x̂ = (x̃ − μ̃)·ρ/ρ̃ + μ; ρ̃ = 0: x̂ = μ), then the running
  // sum, min and max of the true values of the middle, then 0.
  DeviceBuffer* norm = nullptr;
  DeviceBuffer* dims_table = nullptr;  // int32 dims.device_table(head_dim)
  SplitKvDims dims;
};

struct SplitKvLayer {
  KvType type{};       // storage of the exact parts (sink, window, kept); pending/coef/norm are fp32
  int sink = 0;        // S
  int window = 0;      // W (>= 0)
  int middle = 0;      // T, the middle's capacity; 0: no middle (window policy: evicted tokens are dropped)
  int n_freq = 0;      // N
  int fit_tokens = 0;  // the middle length at which the compressed dims are fitted: min(T, 256) by default
  // fkv experiment (docs/FOURIER-IMPL.md): fit x̂ = a·x̃ + b by least squares (a = cov(x, x̃)/var(x̃), with
  // Σ x·x̃ from the coefficients by Parseval) instead of FOURIER.md's range match a = ρ/ρ̃. Stored as
  // ρ := a·ρ̃ so that every reader of `norm` is unchanged.
  bool least_squares_norm = false;
  SplitKvPart k, v;

  int sink_len(int t) const { return std::min(sink, t); }
  int window_begin(int t) const { return std::max(sink, t - window); }
  int middle_len(int t) const { return middle > 0 ? std::clamp(t - window - sink, 0, middle) : 0; }
  bool fitted(int t) const { return middle > 0 && middle_len(t) >= fit_tokens; }
  // The middle length after m at which the normalisation is next refitted (fit_tokens·2^k > m), 0 if none is
  // left within T.
  int next_refit(int m) const {
    for (int r = fit_tokens; r > 0 && r <= middle; r *= 2)
      if (r > m) return r;
    return 0;
  }
};

// How split_attention evaluates the compressed dims of the middle (FOURIER.md "Attention over the split
// cache").
enum class SplitAttentionPath {
  kReference,  // reconstruct k̂, v̂ of every middle position, then ordinary attention
  kFused,      // reconstruct tiles of the middle on the fly inside an online-softmax attention loop
  kSpectral,   // compressed score part by an inverse DFT, V part by a forward DFT of the weights (CPU
               // prototype)
  kAuto,       // the backend's cheapest exact-equivalent choice
};

}  // namespace fkv
