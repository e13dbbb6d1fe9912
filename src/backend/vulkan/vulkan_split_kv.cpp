#include "backend/vulkan/vulkan_split_kv.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/vulkan/vulkan_env.h"
#include "backend/vulkan/vulkan_fft_plan.h"
#include "backend/vulkan/vulkan_kept_layout.h"
#include "fourier/fourier_basis.h"
#include "util/error.h"

namespace fkv {
namespace {

constexpr uint32_t kWorkgroup = 128;
constexpr uint32_t kAttnWorkgroup = 128;  // rows per split_attention tile
constexpr uint32_t kLeanChunk = 16;       // split_attention chunk granularity without spectral work
constexpr uint32_t kMergeColumns = 32;    // partial columns per split_merge_sum workgroup (CW)
constexpr uint32_t kMergeWorkgroup = 256;  // split_attention_merge's invocations (WG)
constexpr uint32_t kPrepFreqs = 32;       // frequencies per split_attention_prep workgroup (FB)
// split_attention_merge.comp sums the partials itself (INLINE_SUM) up to this many chunks (its workgroup
// size) and frequencies of h.
constexpr uint32_t kInlineSumChunks = 256;
constexpr uint32_t kInlineSumFreqs = 128;
constexpr uint32_t kMaxGroupsX = 65535;
constexpr uint32_t kTiledSharedBytes = 32 * 1024;  // split_attention.comp uses at most ~31.5 KiB
// The decode middle pass (split_middle_scores.comp, split_middle_values.comp; shared memory < 26 KiB).
constexpr int kMiddlePassQueries = 8;      // calls of up to this many queries over a fitted middle
// split_middle_fft.comp takes calls of up to this many queries (prefill chunks included).
constexpr uint32_t kFftPassQueries = 64;
// ... as long as their partials take at most this much (a scratch buffer kept for later calls).
constexpr size_t kFftPartialsBytes = size_t(256) << 20;
constexpr uint32_t kMiddleHeads = 32;      // query heads per workgroup (a power of two >= 4)
constexpr uint32_t kMiddleFreqs = 64;      // frequencies per values workgroup (a power of two, 16..256)
constexpr uint32_t kMiddleScoreRows = 64;  // rows per scores workgroup (TR of split_middle_scores.comp)
constexpr uint32_t kMiddleRowsMin = 64;    // the values pass's ranges are multiples of this
// split_middle_fft.comp: FFT entries (query heads x columns x N) per workgroup, its workgroup size and the
// kept K words / V rows each invocation has in flight (FKV_VULKAN_FFT_ENTRIES, _WG, _KLOADS, _VLOADS tune
// them on a GPU). 16 loads rather than 32: 113 registers instead of 122, +3-4% with the staggered kept K
// dots (H100, docs/PERFORMANCE.md "Staggered kept K dots").
constexpr uint32_t kFftEntries = 2048;
constexpr uint32_t kFftWorkgroup = 256;
constexpr uint32_t kFftLoads = 16;
// split_window_decode.comp: rows per workgroup (CL), a multiple of its row slots (128 / (D / 8) for f16).
constexpr uint32_t kWindowDecodeRows = 32;

// Whether split_window_decode.comp takes a KV head's rows of this shape: 16-byte words that split a row
// evenly over a divisor of its 128 invocations, and whole row slots in kWindowDecodeRows.
bool window_decode_fits(uint32_t D, uint32_t G, bool f16) {
  const uint32_t vpt = f16 ? 8 : 4, tpr = D / vpt;
  return D % vpt == 0 && D <= 256 && G >= 1 && G <= 8 && tpr >= 1 && 128 % tpr == 0 &&
         kWindowDecodeRows % (128 / tpr) == 0;
}

const VulkanBuffer& vk(const DeviceBuffer& b) {
  return static_cast<const VulkanBuffer&>(b);
}

// The most kept words one middle row of nk kept dims can take (an odd f16 row straddles a word at either
// end): a decode append's grid covers them, so that it is the same at every position; the shader stops at
// the row's own count.
size_t max_kept_words(int nk, bool f16) {
  return nk == 0 ? 0 : f16 ? size_t(nk) / 2 + 1 : size_t(nk);
}

uint32_t u32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::pair<uint32_t, uint32_t> split_groups(uint32_t groups) {
  if (groups <= kMaxGroupsX) return {groups, 1};
  return {kMaxGroupsX, (groups + kMaxGroupsX - 1) / kMaxGroupsX};
}

// Angles are exact integer indices (n·p) mod T computed in 32 bits; the attention shader also forms 32·p.
void check_period(int period, int n_freq) {
  require(uint64_t(period) * uint64_t(std::max(n_freq, 32)) < (uint64_t(1) << 32) && period < (1 << 27),
          ErrorCode::kUnsupported,
          "Vulkan Fourier ops need N·T < 2^32 and T < 2^27 (T = " + std::to_string(period) +
              ", N = " + std::to_string(n_freq) + ")");
}

}  // namespace

VulkanSplitKv::VulkanSplitKv(std::shared_ptr<VulkanContext> ctx, PipelineCache& pipelines,
                             CommandRecorder& rec)
    : ctx_(std::move(ctx)), pipelines_(pipelines), rec_(rec), cpu_device_(ctx_->cpu_kernels()) {}

Binding VulkanSplitKv::bind(const DeviceBuffer* buf, bool write) const {
  if (!buf) {
    if (!dummy_)
      const_cast<VulkanSplitKv*>(this)->dummy_ =
          std::make_shared<VulkanBuffer>(ctx_, 256, MemoryKind::kDevice, "split KV placeholder binding");
    return Binding{dummy_.get(), 0, dummy_->capacity(), write};
  }
  const VulkanBuffer& b = vk(*buf);
  require(b.capacity() <= ctx_->max_binding(), ErrorCode::kUnsupported,
          "a split KV buffer of " + std::to_string(b.capacity()) +
              " bytes is larger than one Vulkan storage binding (" + std::to_string(ctx_->max_binding()) +
              " bytes on " + ctx_->device_name() + ")");
  return Binding{&b, 0, b.capacity(), write};
}

Binding VulkanSplitKv::position(int pos0) {
  rec_.set_position(uint32_t(pos0));
  return Binding{&rec_.position_buffer(), 0, 4, false};
}

const VulkanBuffer& VulkanSplitKv::basis_table(int period) {
  Buffer& t = tables_[period];
  if (!t) {
    // The CPU's table (fourier_basis.cpp): double-precision angles rounded once, so both backends use the
    // same basis values.
    const FourierBasis basis(period, 1);
    std::vector<float> cs(size_t(period) * 2);
    for (int i = 0; i < period; ++i) {
      cs[size_t(i) * 2] = basis.cos_table()[i];
      cs[size_t(i) * 2 + 1] = basis.sin_table()[i];
    }
    t = std::make_shared<VulkanBuffer>(ctx_, cs.size() * 4, MemoryKind::kDevice, "Fourier basis table");
    rec_.upload(*t, 0, cs.data(), cs.size() * 4);
  }
  return *t;
}

const VulkanBuffer& VulkanSplitKv::scratch(Buffer& slot, size_t bytes, const char* what) {
  if (!slot || slot->size() < bytes)
    slot = std::make_shared<VulkanBuffer>(ctx_, std::max<size_t>(bytes, size_t(1) << 16), MemoryKind::kDevice,
                                          what);
  return *slot;
}

void VulkanSplitKv::grid_dispatch(const Pipeline& p, const std::vector<Binding>& b, const void* pc,
                                  uint32_t pc_bytes, size_t items, uint32_t wg) {
  if (items == 0) return;
  const auto [gx, gz] = split_groups(uint32_t(std::min<size_t>((items + wg - 1) / wg, 16384)));
  rec_.dispatch(p, b, pc, pc_bytes, gx, 1, gz);
}

void VulkanSplitKv::project(const DeviceBuffer& values, uint32_t values_base, int rows, int n_comp, int m0,
                            int period, int n_freq, DeviceBuffer& coef, bool overwrite) {
  require(rows >= 0 && n_comp >= 0 && m0 >= 0 && period >= 1 && n_freq >= 1, ErrorCode::kInvalidArgument,
          "fourier_project: bad sizes");
  if (n_comp == 0 || (rows == 0 && !overwrite)) return;
  check_period(period, n_freq);
  const Pipeline& p = pipelines_.get(overwrite ? "fourier_project" : "fourier_accumulate", {kWorkgroup}, 3);
  const uint32_t pc[] = {
      uint32_t(rows), uint32_t(n_comp), uint32_t(m0), uint32_t(period), uint32_t(n_freq), values_base, 0};
  grid_dispatch(p, {bind(&values, false), bind(&basis_table(period), false), bind(&coef, true)}, pc,
                sizeof(pc), size_t(n_comp) * n_freq, kWorkgroup);
}

void VulkanSplitKv::store_rows(const DeviceBuffer& k, const DeviceBuffer& v, int src_row0, int count,
                               int pos_first, int pos0, int ring, int sink, int row_len, KvType type,
                               DeviceBuffer& dst_k, DeviceBuffer& dst_v) {
  if (count <= 0) return;
  const bool f16 = type == KvType::kF16;
  require(!f16 || row_len % 2 == 0, ErrorCode::kUnsupported, "an f16 KV row must hold an even count");
  const Pipeline& p = pipelines_.get("split_kv_rows", {kWorkgroup, f16 ? 1u : 0u}, 5);
  const uint32_t pc[] = {uint32_t(count),
                         uint32_t(row_len),
                         uint32_t(src_row0),
                         uint32_t(pos_first - pos0),  // from the position register
                         uint32_t(sink),
                         uint32_t(ring),
                         0};
  grid_dispatch(p, {bind(&k, false), bind(&dst_k, true), position(pos0), bind(&v, false), bind(&dst_v, true)},
                pc, sizeof(pc), 2 * size_t(count) * (f16 ? row_len / 2 : row_len), kWorkgroup);
}

void VulkanSplitKv::stats(const DeviceBuffer& rows, uint32_t base, int count, int n_comp, bool init,
                          DeviceBuffer& norm) {
  const Pipeline& p = pipelines_.get("fourier_stats", {kWorkgroup}, 2);
  const uint32_t pc[] = {uint32_t(count), uint32_t(n_comp), base, init ? 1u : 0u};
  rec_.dispatch(p, {bind(&rows, false), bind(&norm, true)}, pc, sizeof(pc),
                (uint32_t(n_comp) + kWorkgroup - 1) / kWorkgroup, 1, 1);
}

void VulkanSplitKv::refit(const SplitKvLayer& c, const SplitKvPart& part, int rows, const VulkanBuffer* out) {
  const int nc = part.dims.n_comp();
  const uint32_t blocks = (uint32_t(rows) + kWorkgroup - 1) / kWorkgroup;
  require(blocks <= kMaxGroupsX && nc <= int(kMaxGroupsX), ErrorCode::kUnsupported,
          "Fourier refit: middle or compressed dims too large for one dispatch");
  const VulkanBuffer& partial =
      out ? *out : scratch(refit_partial_, size_t(nc) * blocks * 32, "Fourier refit partial sums");
  const Pipeline& p = pipelines_.get("fourier_refit", {kWorkgroup, kWorkgroup}, 4);
  const std::vector<Binding> b = {bind(part.coef, false), bind(&basis_table(c.middle), false),
                                  bind(&partial, true), bind(part.norm, !out)};
  uint32_t pc[] = {uint32_t(rows),
                   uint32_t(nc),
                   uint32_t(c.n_freq),
                   uint32_t(c.middle),
                   blocks,
                   out ? 2u : 0u,
                   c.least_squares_norm ? 1u : 0u};
  rec_.dispatch(p, b, pc, sizeof(pc), blocks, uint32_t(nc), 1);
  if (out) return;
  pc[5] = 1;
  rec_.dispatch(p, b, pc, sizeof(pc), (uint32_t(nc) + kWorkgroup - 1) / kWorkgroup, 1, 1);
}

bool VulkanSplitKv::enter_middle_pair(const SplitKvLayer& c, const DeviceBuffer& k, const DeviceBuffer& v,
                                      int e0, int cnt, int pos0, const AttentionShape& s) {
  const int m0 = e0 - c.sink;
  const int nk_k = c.k.dims.n_keep(), nc_k = c.k.dims.n_comp(), nk_v = c.v.dims.n_keep(),
            nc_v = c.v.dims.n_comp();
  // enter_middle's mode-2 condition, for both parts.
  if (!pair_append_ || cnt != 1 || nc_k == 0 || nc_v == 0 || m0 < c.fit_tokens || c.next_refit(m0) == m0 + 1)
    return false;
  check_period(c.middle, c.n_freq);
  const bool f16 = c.type == KvType::kF16;
  const Pipeline& p = pipelines_.get("split_kv_middle_pair", {kWorkgroup, f16 ? 1u : 0u}, 14);
  const uint32_t pc[] = {uint32_t(e0 - pos0),  // from the position register (pos0)
                         uint32_t(c.sink),     uint32_t(c.window), uint32_t(s.n_kv_heads),
                         uint32_t(s.head_dim), uint32_t(nk_k),     uint32_t(nc_k),
                         uint32_t(nk_v),       uint32_t(nc_v),     uint32_t(c.middle),
                         uint32_t(c.n_freq)};
  const std::vector<Binding> b = {bind(c.k.window, false),
                                  bind(&k, false),
                                  bind(c.k.dims_table, false),
                                  bind(c.k.kept, true),
                                  bind(c.k.coef, true),
                                  bind(c.k.norm, true),
                                  bind(c.v.window, false),
                                  bind(&v, false),
                                  bind(c.v.dims_table, false),
                                  bind(c.v.kept, true),
                                  bind(c.v.coef, true),
                                  bind(c.v.norm, true),
                                  bind(&basis_table(c.middle), false),
                                  position(pos0)};
  grid_dispatch(p, b, pc, sizeof(pc),
                max_kept_words(nk_k, f16) + size_t(nc_k) * c.n_freq + max_kept_words(nk_v, f16) +
                    size_t(nc_v) * c.n_freq,
                kWorkgroup);
  return true;
}

void VulkanSplitKv::enter_middle(const SplitKvLayer& c, const SplitKvPart& part, const DeviceBuffer& chunk,
                                 int e0, int cnt, int pos0, const AttentionShape& s) {
  const SplitKvDims& dims = part.dims;
  const int nk = dims.n_keep(), nc = dims.n_comp(), m0 = e0 - c.sink;
  const bool f16 = c.type == KvType::kF16;
  const bool columns = &part == &c.k;  // K's kept rows are stored by columns (vulkan_kept_layout.h)
  const Pipeline& p = pipelines_.get("split_kv_middle", {kWorkgroup, f16 ? 1u : 0u, columns ? 1u : 0u}, 10);
  uint32_t pc[] = {uint32_t(cnt),
                   uint32_t(e0 - pos0),  // from the position register (pos0)
                   uint32_t(c.sink),
                   uint32_t(c.window),
                   uint32_t(s.n_kv_heads),
                   uint32_t(s.head_dim),
                   uint32_t(nk),
                   uint32_t(nc),
                   uint32_t(c.fit_tokens),
                   0,
                   uint32_t(std::max(c.middle, 1)),
                   uint32_t(std::max(c.n_freq, 1))};
  // A decode step after the fit that triggers no refit: kept dims, accumulation and running statistics in
  // one dispatch (mode 2).
  const bool decode = cnt == 1 && nc > 0 && m0 >= c.fit_tokens && c.next_refit(m0) != m0 + 1;
  const VulkanBuffer* comp = nc > 0 && !decode
                                 ? &scratch(&part == &c.k ? comp_k_ : comp_v_, size_t(cnt) * nc * 4,
                                            "Fourier rows entering the middle")
                                 : nullptr;
  if (decode) check_period(c.middle, c.n_freq);
  const std::vector<Binding> b = {bind(part.window, false),
                                  bind(&chunk, false),
                                  bind(part.dims_table, false),
                                  bind(part.kept, true),
                                  bind(comp, true),
                                  bind(decode ? nullptr : part.pending, true),
                                  bind(decode ? part.coef : nullptr, true),
                                  bind(decode ? part.norm : nullptr, true),
                                  bind(decode ? &basis_table(c.middle) : nullptr, false),
                                  position(pos0)};
  if (decode) {
    pc[9] = 2;
    grid_dispatch(p, b, pc, sizeof(pc), max_kept_words(nk, f16) + size_t(nc) * c.n_freq, kWorkgroup);
    return;
  }
  if (nk > 0) {
    const size_t first = size_t(m0) * nk, last = size_t(m0 + cnt) * nk;
    grid_dispatch(p, b, pc, sizeof(pc),
                  columns ? size_t(cnt) * kept_k_row_words(uint32_t(nk), f16)
                  : f16   ? (last + 1) / 2 - first / 2
                          : last - first,
                  kWorkgroup);
  }
  if (nc == 0) return;
  check_period(c.middle, c.n_freq);
  pc[9] = 1;
  grid_dispatch(p, b, pc, sizeof(pc), size_t(cnt) * nc, kWorkgroup);
  // Rows before the fit stay exact in `pending`; the row that completes fit_tokens triggers the fit.
  const int before_fit = std::clamp(c.fit_tokens - m0, 0, cnt);
  if (before_fit > 0 && m0 + before_fit == c.fit_tokens) {
    project(*part.pending, 0, c.fit_tokens, nc, 0, c.middle, c.n_freq, *part.coef, true);
    stats(*part.pending, 0, c.fit_tokens, nc, true, *part.norm);
    refit(c, part, c.fit_tokens);
  }
  // After the fit: accumulate, in segments that end where the middle reaches a refit length.
  for (int r = before_fit; r < cnt;) {
    const int m = m0 + r, next = c.next_refit(m);
    const int seg = next > 0 ? std::min(cnt - r, next - m) : cnt - r;
    project(*comp, uint32_t(r * nc), seg, nc, m, c.middle, c.n_freq, *part.coef, false);
    stats(*comp, uint32_t(r * nc), seg, nc, false, *part.norm);
    r += seg;
    if (m + seg == next) refit(c, part, next);
  }
}

void VulkanSplitKv::append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                           const AttentionShape& s, SplitKvLayer& c) {
  require(pos0 >= 0 && n >= 0, ErrorCode::kInvalidArgument, "split_kv_append: negative position or count");
  if (c.middle > 0)
    require(pos0 + n <= c.sink + c.window + c.middle, ErrorCode::kContextFull,
            "split KV cache holds " + std::to_string(c.sink + c.window + c.middle) +
                " positions; asked to store up to " + std::to_string(pos0 + n));
  if (n == 0) return;
  const int row_len = s.n_kv_heads * s.head_dim;
  const int sink_end = std::min(c.sink, pos0 + n);
  if (pos0 < sink_end) {
    store_rows(k, v, 0, sink_end - pos0, pos0, pos0, 0, c.sink, row_len, c.type, *c.k.sink, *c.v.sink);
  }
  // Positions that leave the window enter the middle before the ring rows they come from are overwritten
  // (the recorder puts a barrier between the reads and the writes).
  const int e0 = c.window_begin(pos0), e1 = c.window_begin(pos0 + n);
  if (c.middle > 0 && e1 > e0 && !enter_middle_pair(c, k, v, e0, e1 - e0, pos0, s)) {
    enter_middle(c, c.k, k, e0, e1 - e0, pos0, s);
    enter_middle(c, c.v, v, e0, e1 - e0, pos0, s);
  }
  const int w0 = std::max({e1, pos0, c.sink});
  if (w0 < pos0 + n && c.window > 0) {
    store_rows(k, v, w0 - pos0, pos0 + n - w0, w0, pos0, c.window, c.sink, row_len, c.type, *c.k.window,
               *c.v.window);
  }
}

void VulkanSplitKv::attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n,
                              int pos0, const AttentionShape& s, const SplitKvLayer& c,
                              SplitAttentionPath path, DeviceBuffer& out) {
  require(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && s.head_dim > 0 && s.head_dim % 2 == 0,
          ErrorCode::kInvalidArgument, "split_attention: bad head shape");
  if (n <= 0) return;
  const uint32_t D = uint32_t(s.head_dim), H = uint32_t(s.n_heads), G = H / uint32_t(s.n_kv_heads);
  require(G <= 16, ErrorCode::kUnsupported, "split_attention: more than 16 query heads per KV head");
  const int S_len = c.sink_len(pos0), M = c.middle_len(pos0), wb = c.window_begin(pos0);
  const int W_len = std::max(0, pos0 - wb);
  bool fitted = c.fitted(pos0) && M > 0;
  const int nk_k = M > 0 ? c.k.dims.n_keep() : 0, nc_k = M > 0 ? c.k.dims.n_comp() : 0;
  const int nk_v = M > 0 ? c.v.dims.n_keep() : 0, nc_v = M > 0 ? c.v.dims.n_comp() : 0;
  // split_attention.comp (tiled: coalesced staged rows, register-blocked spectral sums) takes the usual
  // shapes; split_attention_rows.comp (one invocation per row) the rest. FKV_VULKAN_SPLIT_ROWS=1 forces the
  // latter (for comparisons).
  static const bool force_rows = std::getenv("FKV_VULKAN_SPLIT_ROWS") != nullptr &&
                                 std::string(std::getenv("FKV_VULKAN_SPLIT_ROWS")) == "1";
  const bool tiled = !force_rows && G <= 8 && D % 8 == 0 && D <= 128 &&
                     ctx_->properties().limits.maxComputeSharedMemorySize >= kTiledSharedBytes;

  // The decode middle pass (a fitted middle, up to kMiddlePassQueries queries): split_middle_scores.comp
  // scores every middle row for all query heads at once, split_middle_values.comp turns them into softmax
  // partials (one chunk slot per range of rows) with the V side's h; split_attention.comp then covers sink,
  // window and the call's rows only. FKV_VULKAN_MIDDLE_PASS=0 keeps the middle inside split_attention.comp.
  // Read on every call: the tests switch it between calls of one backend.
  const bool middle_pass_on = env_switch("FKV_VULKAN_MIDDLE_PASS", true);
  // The FFT form of the middle pass (split_middle_fft.comp, one pass instead of scores + values) when the
  // period is a multiple of a power-of-two N (SplitKvCache makes it so). FKV_VULKAN_MIDDLE_FFT=0 keeps the
  // two direct passes; FKV_VULKAN_FFT_ENTRIES tunes the workgroup's share (columns x heads x N).
  static const uint32_t fft_entries = env_count("FKV_VULKAN_FFT_ENTRIES", kFftEntries);
  static const bool fft_entries_set = env_count("FKV_VULKAN_FFT_ENTRIES", 0) > 0;
  static const uint32_t fft_wg = [] {
    uint32_t wg = 64;  // a power of two in [64, 1024]
    while (wg < 1024 && wg < env_count("FKV_VULKAN_FFT_WG", kFftWorkgroup)) wg *= 2;
    return wg;
  }();
  // At most 128 loads in flight (register arrays of the shader; a larger count would only fail to compile).
  static const uint32_t fft_kloads = std::min(env_count("FKV_VULKAN_FFT_KLOADS", kFftLoads), 128u);
  static const uint32_t fft_vloads = std::min(env_count("FKV_VULKAN_FFT_VLOADS", kFftLoads), 128u);
  // Odd workgroups read their kept K rows before the DIT FFT (split_middle_fft.comp); 0 turns it off.
  static const uint32_t fft_stagger = env_switch("FKV_VULKAN_FFT_STAGGER", true) ? 1 : 0;
  // The FFT pass also takes prefill chunks of up to kFftPassQueries queries (FKV_VULKAN_FFT_QUERIES), where
  // split_attention.comp would evaluate the spectral sums row by row.
  static const uint32_t fft_queries = env_count("FKV_VULKAN_FFT_QUERIES", kFftPassQueries);
  const uint32_t N = uint32_t(std::max(c.n_freq, 1));
  const size_t shared_limit = ctx_->properties().limits.maxComputeSharedMemorySize;
  const uint32_t fft_cols = std::min(uint32_t(c.middle) / N, uint32_t(M));  // columns with rows
  // VB of the FFT pass for a fitted middle with compressed K (sk) or V (sv) dims; 0: the pass does not take
  // the call.
  auto fft_plan = [&](bool sk, bool sv) -> uint32_t {
    const bool middle_fitted = middle_pass_on && fitted && tiled;
    uint32_t vb = middle_fitted && uint32_t(n) <= fft_queries && (sk || sv) &&
                          env_switch("FKV_VULKAN_MIDDLE_FFT", true) &&
                          fft_wg <= ctx_->properties().limits.maxComputeWorkGroupSize[0] &&
                          fft_wg <= ctx_->properties().limits.maxComputeWorkGroupInvocations
                      ? fft_columns(G, N, uint32_t(c.middle), D, fft_entries, fft_wg, shared_limit)
                      : 0;
    // Fewer, wider workgroups (more columns each) pay while at least 256 remain: each writes G partials (ps
    // floats: m, l, acc[D], h_c[N], h_s[N]) that split_merge_sum.comp reads back, and sets up q and the
    // twiddles once. H100, Q4_0 8B: defaults (N 512) 32K +5% and 64K +10% with 2 columns (82fe361); W 256 N
    // 128 at 32K 145.4-145.7 against 140.8-141.9 t/s with 8 columns instead of 4 (256 workgroups), while 16
    // (128 workgroups) were 10% slower, and at 8K (64 workgroups) 2 columns were 2-8% slower than 1 (N 512)
    // and 8 than 4 (N 128). FKV_VULKAN_FFT_ENTRIES, when set, decides alone.
    if (vb && !fft_entries_set)
      vb = fft_columns_widened(vb, fft_cols, uint32_t(n) * uint32_t(s.n_kv_heads), G, N, uint32_t(c.middle),
                               D, fft_wg, shared_limit);
    // A call of many queries whose partials (ps floats: m, l, acc[D], h) would take more than
    // kFftPartialsBytes leaves the middle to the other passes.
    const size_t ps = D + 2 + (sv ? 2 * size_t(N) : 0);
    if (vb && size_t(n) * H * ((fft_cols + vb - 1) / vb) * ps * 4 >
                  std::min<size_t>(kFftPartialsBytes, ctx_->max_binding()))
      vb = 0;
    return vb;
  };
  // A prefill chunk that the FFT pass takes keeps the middle fitted (no rebuild below).
  const uint32_t fft_vb_fitted = fft_plan(fitted && nc_k > 0, fitted && nc_v > 0);
  // A fitted middle's compressed dims cost 4N per row and query head in the frequency domain, 2N per row
  // and compressed dim to rebuild once for the whole call: rebuilding wins for prefill chunks that the FFT
  // pass does not take (its cost per head is T log N, not M·N: at the 8B shape at 32K it took 64-token
  // chunks 17 times faster than the rebuild, docs/PERFORMANCE.md "Prefill chunks through the FFT pass"). The
  // rebuilt rows [M, n_comp] (x̂, fp32) then take the place of `pending` and the middle is read as exact rows.
  const DeviceBuffer *pending_k = M > 0 ? c.k.pending : nullptr, *pending_v = M > 0 ? c.v.pending : nullptr;
  if (fitted && nc_k + nc_v > 0) {
    const bool fits = size_t(M) * std::max(nc_k, nc_v) * 4 <= ctx_->max_binding();
    const bool rebuild =
        fits && (path == SplitAttentionPath::kReference || path == SplitAttentionPath::kFused ||
                 (path == SplitAttentionPath::kAuto && !fft_vb_fitted && nc_k + nc_v < 2 * n * s.n_heads));
    if (rebuild) {
      check_period(c.middle, c.n_freq);
      if (nc_k > 0) {
        pending_k = &scratch(rebuilt_k_, size_t(M) * nc_k * 4, "split attention rebuilt middle (K)");
        refit(c, c.k, M, static_cast<const VulkanBuffer*>(pending_k));
      }
      if (nc_v > 0) {
        pending_v = &scratch(rebuilt_v_, size_t(M) * nc_v * 4, "split attention rebuilt middle (V)");
        refit(c, c.v, M, static_cast<const VulkanBuffer*>(pending_v));
      }
      fitted = false;
    }
  }
  const bool spec_k = fitted && nc_k > 0, spec_v = fitted && nc_v > 0;
  if (spec_k || spec_v) check_period(c.middle, c.n_freq);
  const bool f16 = c.type == KvType::kF16;

  const VulkanBuffer* gvec = nullptr;
  const size_t gstride = 2 * size_t(N) + 4;
  if (spec_k) gvec = &scratch(gvec_, size_t(n) * H * gstride * 4, "split attention score vectors");
  // split_attention_prep.comp: one workgroup per (query head, block of kPrepFreqs frequencies). Recorded
  // below, before anything that reads gvec, unless it joins the sink/window pass's dispatch.
  auto record_prep = [&] {
    const Pipeline& prep = pipelines_.get("split_attention_prep", {}, 5);
    const uint32_t pc[] = {uint32_t(n) * H, H, uint32_t(s.n_kv_heads), D, N, uint32_t(nk_k)};
    const auto [gx, gz] = split_groups(uint32_t(n) * H);
    rec_.dispatch(prep,
                  {bind(&q, false), bind(c.k.coef, false), bind(c.k.norm, false), bind(c.k.dims_table, false),
                   bind(gvec, true)},
                  pc, sizeof(pc), gx, (N + kPrepFreqs - 1) / kPrepFreqs, gz);
  };

  const uint32_t count = uint32_t(n) * H;
  // Powers of two, so that the shaders' per-invocation shares (basis entries, scores) come out whole.
  auto pow2_at_least = [](uint32_t x, uint32_t lo) {
    while (lo < x) lo *= 2;
    return lo;
  };
  const uint32_t HB = std::min(kMiddleHeads, pow2_at_least(count, 4));
  const uint32_t hblocks = (count + HB - 1) / HB;
  const uint32_t FB = spec_v ? std::min(kMiddleFreqs, pow2_at_least(N, 16)) : 16;
  const uint32_t fblocks = spec_v ? (N + FB - 1) / FB : 1;
  const bool direct_middle = middle_pass_on && fitted && tiled && n <= kMiddlePassQueries &&
                             size_t(count) * M * 4 <= ctx_->max_binding() &&
                             (uint32_t(M) + kMiddleScoreRows - 1) / kMiddleScoreRows <= kMaxGroupsX &&
                             hblocks <= kMaxGroupsX;
  const size_t ps = D + 2 + (spec_v ? 2 * size_t(N) : 0);  // floats of one partial: m, l, acc[D], h
  const uint32_t fft_vb = fitted ? fft_vb_fitted : 0;      // after a rebuild the middle is read as exact rows
  const uint32_t fft_blocks = fft_vb ? (fft_cols + fft_vb - 1) / fft_vb : 0;
  require(fft_blocks <= kMaxGroupsX, ErrorCode::kUnsupported,
          "split attention: the FFT middle pass needs more than 65535 column blocks (T / N too large)");
  const bool middle_pass = fft_vb > 0 || direct_middle;
  uint32_t mid_rows = 0;  // R: middle rows per chunk slot of the middle pass
  if (middle_pass && !fft_vb) {
    // Enough workgroups (ranges x head blocks x frequency blocks) to fill the device; FKV_VULKAN_MIDDLE_ROWS
    // overrides R (tuning on a GPU).
    static const uint32_t rows_env = [] {
      const char* e = std::getenv("FKV_VULKAN_MIDDLE_ROWS");
      return e ? uint32_t(std::max(1, std::atoi(e))) : 0u;
    }();
    const uint32_t target = cpu_device_ ? 32 : 512;
    const uint32_t ranges = std::max<uint32_t>(1, target / (hblocks * fblocks));
    mid_rows = rows_env ? rows_env : (uint32_t(M) + ranges - 1) / ranges;
    mid_rows = std::max(kMiddleRowsMin, (mid_rows + kMiddleRowsMin - 1) / kMiddleRowsMin * kMiddleRowsMin);
  }

  // Split the rows so that (splits x KV heads x queries) workgroups fill the device. With a fitted middle
  // each split also writes 2N floats of h per query head and rows cost ~4N operations each, so fewer,
  // longer splits: partial traffic stays small and the work per row keeps the device busy.
  const uint32_t max_len = uint32_t(S_len + (middle_pass ? 0 : M) + W_len + n);
  // FKV_VULKAN_SPLIT_GROUPS=N overrides the target (tuning on a GPU).
  static const uint32_t target_env = [] {
    const char* e = std::getenv("FKV_VULKAN_SPLIT_GROUPS");
    return e ? uint32_t(std::max(1, std::atoi(e))) : 0u;
  }();
  const bool main_spec = spec_v && !middle_pass;
  const uint32_t target = target_env ? target_env : cpu_device_ ? 64 : main_spec ? 512 : 2048;
  const uint32_t work = std::min<uint32_t>(uint32_t(n) * uint32_t(s.n_kv_heads), target);
  const uint32_t want = std::max<uint32_t>(1, target / work);
  uint32_t chunk_len = (max_len + want - 1) / want;
  // Without spectral work (the middle pass took a fitted middle, or none is fitted) split_attention.comp's
  // rows are cheap and its cost is latency: ~5 barriers per row stage of 11 rows (head_dim 128), so
  // 128-row chunks made 72 workgroups at the 8B shape (sink + window 1024 rows) each walk ~25 dependent
  // stages. Chunks of kLeanChunk rows give more, shorter workgroups; the merge sums the extra partials in
  // parallel.
  const uint32_t quantum = main_spec || !tiled ? kAttnWorkgroup : kLeanChunk;
  chunk_len = std::max(quantum, (chunk_len + quantum - 1) / quantum * quantum);
  // A decode step whose middle is empty or taken by the middle pass: sink, window and its own row in
  // split_window_decode.comp (FKV_VULKAN_WINDOW_DECODE=0 keeps split_attention.comp, for comparisons).
  const bool window_decode = n == 1 && (middle_pass || M == 0) && window_decode_fits(D, G, f16) &&
                             env_switch("FKV_VULKAN_WINDOW_DECODE", true);
  if (window_decode) chunk_len = kWindowDecodeRows;
  const uint32_t NF = spec_v ? N : 1;
  auto mid_chunks = [&] {
    return fft_vb ? fft_blocks : middle_pass ? (uint32_t(M) + mid_rows - 1) / mid_rows : 0u;
  };
  // The middle pass writes its partials to a buffer of its own (mid_partials), so that split_attention.comp
  // (sink, window) runs beside it without a barrier; split_merge_sum.comp reads both.
  while (size_t(n) * H * std::max((max_len + chunk_len - 1) / chunk_len, mid_chunks()) * ps * 4 >
         ctx_->max_binding()) {
    require(!fft_vb || chunk_len < (1u << 30), ErrorCode::kUnsupported,
            "split attention: the FFT middle pass's partials exceed the device's largest binding");
    chunk_len *= 2;
    mid_rows *= 2;
  }
  const uint32_t main_chunks = (max_len + chunk_len - 1) / chunk_len;
  const uint32_t midc = mid_chunks();
  const VulkanBuffer& partials =
      scratch(partials_, size_t(n) * H * main_chunks * ps * 4, "split attention partials");
  const VulkanBuffer* mid_partials =
      midc > 0 ? &scratch(mid_partials_, size_t(n) * H * midc * ps * 4, "split attention middle partials")
               : nullptr;
  const VulkanBuffer* table = (spec_k || spec_v) ? &basis_table(c.middle) : nullptr;

  // split_window_decode.comp's push constants and bindings, also the first of split_prep_window.comp's. The
  // sink and window extents come from the position register: the same command at every position.
  const std::vector<uint32_t> window_pc = {H,
                                           uint32_t(s.n_kv_heads),
                                           u32(s.scale),
                                           main_chunks,
                                           uint32_t(c.window),
                                           uint32_t(c.sink),
                                           uint32_t(std::max(c.window, 1))};
  auto window_bindings = [&] {
    return std::vector<Binding>{bind(&q, false),         bind(&k, false),         bind(&v, false),
                                bind(c.k.sink, false),   bind(c.k.window, false), bind(c.v.sink, false),
                                bind(c.v.window, false), bind(&partials, true),   position(pos0)};
  };
  // split_attention.comp over sink, window and the call's rows (and the middle without the middle pass); a
  // decode step's sink, window and own row in split_window_decode.comp when the middle is not its business.
  auto record_main = [&] {
    if (window_decode && chunk_len == kWindowDecodeRows) {
      const Pipeline& wp =
          pipelines_.get("split_window_decode", {D, G, f16 ? 1u : 0u, kWindowDecodeRows, uint32_t(ps)}, 9);
      rec_.dispatch(wp, window_bindings(), window_pc.data(), uint32_t(window_pc.size() * 4), main_chunks,
                    uint32_t(s.n_kv_heads), 1);
      return;
    }
    std::vector<uint32_t> spec = {kAttnWorkgroup,
                                  kAttnWorkgroup,
                                  D,
                                  G,
                                  f16 ? 1u : 0u,
                                  main_spec ? NF : 1u,
                                  spec_k && !middle_pass ? 1u : 0u,
                                  main_spec ? 1u : 0u};
    if (tiled) spec.push_back(middle_pass && spec_v ? N : 0u);
    const Pipeline& main_p = pipelines_.get(tiled ? "split_attention" : "split_attention_rows", spec, 16);
    const int Mm = middle_pass ? 0 : M;  // the middle pass took the middle
    const bool fitted_main = fitted && !middle_pass;
    const uint32_t pc[] = {uint32_t(pos0),
                           H,
                           uint32_t(s.n_kv_heads),
                           u32(s.scale),
                           chunk_len,
                           main_chunks,
                           uint32_t(S_len),
                           uint32_t(Mm),
                           uint32_t(W_len),
                           uint32_t(wb),
                           uint32_t(c.sink),
                           uint32_t(std::max(c.window, 1)),
                           fitted_main ? 1u : 0u,
                           uint32_t(std::max(c.middle, 1)),
                           N,
                           uint32_t(Mm > 0 ? nk_k : 0),
                           uint32_t(Mm > 0 ? nc_k : 0),
                           uint32_t(Mm > 0 ? nk_v : 0),
                           uint32_t(Mm > 0 ? nc_v : 0)};
    rec_.dispatch(
        main_p,
        {bind(&q, false), bind(&k, false), bind(&v, false), bind(c.k.sink, false), bind(c.k.window, false),
         bind(Mm > 0 ? c.k.kept : nullptr, false), bind(Mm > 0 && !fitted ? pending_k : nullptr, false),
         bind(c.v.sink, false), bind(c.v.window, false), bind(Mm > 0 ? c.v.kept : nullptr, false),
         bind(Mm > 0 && !fitted ? pending_v : nullptr, false), bind(Mm > 0 ? c.k.dims_table : nullptr, false),
         bind(Mm > 0 ? c.v.dims_table : nullptr, false), bind(fitted_main ? gvec : nullptr, false),
         bind(fitted_main ? table : nullptr, false), bind(&partials, true)},
        pc, sizeof(pc), main_chunks, uint32_t(s.n_kv_heads), uint32_t(n));
  };
  // A decode step's prep and sink/window pass as one dispatch (split_prep_window.comp) before the FFT pass.
  const uint32_t window_groups = main_chunks * uint32_t(s.n_kv_heads);
  const uint32_t prep_groups = H * ((N + kPrepFreqs - 1) / kPrepFreqs);
  // FKV_VULKAN_PREP_WINDOW=0: two dispatches (read on every call, like the switches above: the tests flip
  // it).
  const bool prep_window = env_switch("FKV_VULKAN_PREP_WINDOW", true) && spec_k && fft_vb && window_decode &&
                           chunk_len == kWindowDecodeRows && window_groups + prep_groups <= kMaxGroupsX;
  if (spec_k && !prep_window) record_prep();
  if (prep_window) {
    const Pipeline& pw =
        pipelines_.get("split_prep_window", {D, G, f16 ? 1u : 0u, kWindowDecodeRows, uint32_t(ps)}, 13);
    std::vector<uint32_t> pc = window_pc;
    pc.insert(pc.end(), {H, D, N, uint32_t(nk_k)});  // the prep's count, head_dim, n_freq, n_keep
    std::vector<Binding> b = window_bindings();
    b.insert(b.end(),
             {bind(c.k.coef, false), bind(c.k.norm, false), bind(c.k.dims_table, false), bind(gvec, true)});
    rec_.dispatch(pw, b, pc.data(), uint32_t(pc.size() * 4), window_groups + prep_groups, 1, 1);
  }
  if (fft_vb) {
    if (!prep_window) record_main();
    uint32_t log_n = 0;
    while ((1u << log_n) < N) ++log_n;
    const Pipeline& fp = pipelines_.get("split_middle_fft",
                                        {log_n, G, fft_vb, D, f16 ? 1u : 0u, spec_k ? 1u : 0u,
                                         spec_v ? 1u : 0u, fft_wg, fft_kloads, fft_vloads, fft_stagger},
                                        9);
    // M comes from the position register (with S and W): the same command at every position.
    const uint32_t fpc[] = {H,
                            uint32_t(s.n_kv_heads),
                            uint32_t(c.sink),
                            uint32_t(c.window),
                            uint32_t(c.middle),
                            uint32_t(nk_k),
                            uint32_t(nk_v),
                            midc,
                            u32(s.scale)};
    rec_.dispatch(
        fp,
        {bind(&q, false), bind(nk_k > 0 ? c.k.kept : nullptr, false), bind(c.k.dims_table, false),
         bind(nk_v > 0 ? c.v.kept : nullptr, false), bind(c.v.dims_table, false),
         bind(spec_k ? gvec : nullptr, false), bind(table, false), bind(mid_partials, true), position(pos0)},
        fpc, sizeof(fpc), uint32_t(n) * uint32_t(s.n_kv_heads), fft_blocks, 1);
  } else if (middle_pass) {
    // The kept V dims: blocks fblocks.. of the values pass, one per KV group (G query heads sharing a KV
    // head) that a head block touches.
    uint32_t kblocks = 1;
    for (uint32_t y = 0; y < hblocks; ++y) {
      const uint32_t a = y * HB, b = std::min(a + HB, count);
      kblocks = std::max(kblocks, (b - 1) / G - a / G + 1);
    }
    const VulkanBuffer& scores = scratch(scores_, size_t(count) * M * 4, "split attention middle scores");
    // The kept K dims' part of the scores: blocks z = 1.. of the scores pass (one per KV group, like the
    // kept V blocks), into a scratch of its own that the values pass adds.
    const VulkanBuffer* kscores =
        nk_k > 0 ? &scratch(kscores_, size_t(count) * M * 4, "split attention middle kept scores") : nullptr;
    const Pipeline& sp =
        pipelines_.get("split_middle_scores", {4 * HB, HB, D, G, f16 ? 1u : 0u, spec_k ? 1u : 0u}, 7);
    const uint32_t spc[] = {
        count,          H,           uint32_t(s.n_kv_heads), uint32_t(M), uint32_t(std::max(c.middle, 1)), N,
        uint32_t(nk_k), u32(s.scale)};
    rec_.dispatch(sp,
                  {bind(&q, false), bind(nk_k > 0 ? c.k.kept : nullptr, false), bind(c.k.dims_table, false),
                   bind(gvec, false), bind(table, false), bind(&scores, true), bind(kscores, true)},
                  spc, sizeof(spc), (uint32_t(M) + kMiddleScoreRows - 1) / kMiddleScoreRows, hblocks,
                  1 + (nk_k > 0 ? kblocks : 0));
    // Recorded here, split_attention.comp shares nothing written by the scores pass (no barrier between
    // them), so it runs beside it; the values pass (partials, after the scores) gets the barrier.
    record_main();
    const Pipeline& vp = pipelines_.get(
        "split_middle_values",
        {HB * FB / 16, HB, D, G, f16 ? 1u : 0u, spec_v ? 1u : 0u, NF, FB, nk_k > 0 ? 1u : 0u}, 6);
    const uint32_t vpc[] = {count,
                            H,
                            uint32_t(s.n_kv_heads),
                            uint32_t(M),
                            uint32_t(std::max(c.middle, 1)),
                            N,
                            uint32_t(nk_v),
                            mid_rows,
                            midc};
    rec_.dispatch(
        vp,
        {bind(&scores, false), bind(nk_v > 0 ? c.v.kept : nullptr, false), bind(c.v.dims_table, false),
         bind(table, false), bind(mid_partials, true), bind(kscores, false)},
        vpc, sizeof(vpc), midc, hblocks, fblocks + kblocks);
  } else {
    record_main();
  }

  // The merge: split_merge_sum.comp sums the chunks column by column (workgroups over columns and query
  // heads), split_attention_merge.comp applies the V coefficients (workgroups over blocks of compressed
  // dims and query heads) and divides by the softmax sum.
  const uint32_t qh_y = std::min(count, kMaxGroupsX), qh_z = (count + qh_y - 1) / qh_y;
  const uint32_t h_first = middle_pass ? main_chunks : 0u;
  // Few partials (a decode step with N <= kInlineSumFreqs): the merge sums them itself (INLINE_SUM), one
  // dispatch and phase instead of two; every compressed-dim block of a head then repeats the head's sum.
  // FKV_VULKAN_INLINE_SUM=0 keeps split_merge_sum.comp (for comparisons).
  const bool inline_sum = n == 1 && main_chunks + midc <= kInlineSumChunks && NF <= kInlineSumFreqs &&
                          env_switch("FKV_VULKAN_INLINE_SUM", true);
  const VulkanBuffer* sums = nullptr;
  if (!inline_sum) {
    sums = &scratch(sums_, size_t(count) * ps * 4, "split attention merged sums");
    const Pipeline& sum_p = pipelines_.get("split_merge_sum", {D, spec_v ? N : 0u}, 3);
    const uint32_t sc[] = {main_chunks, count, h_first, midc};
    rec_.dispatch(sum_p, {bind(&partials, false), bind(sums, true), bind(mid_partials, false)}, sc,
                  sizeof(sc), uint32_t((ps + kMergeColumns - 1) / kMergeColumns), qh_y, qh_z);
  }
  // Invocations per compressed dim: FKV_VULKAN_MERGE_LANES (a power of two, 4..256; read on every call, for
  // the tests), default 32; a workgroup takes kMergeWorkgroup / lanes dims.
  const uint32_t lanes =
      std::bit_floor(std::clamp<uint32_t>(env_count("FKV_VULKAN_MERGE_LANES", 32), 4, kMergeWorkgroup));
  const uint32_t merge_dims = kMergeWorkgroup / lanes;
  uint32_t cblocks = 1;  // blocks of merge_dims compressed dims: the most any KV group has
  if (spec_v)
    for (int g = 0; g < s.n_kv_heads; ++g) {
      const int a = c.v.dims.comp_offset[size_t(g)], b = c.v.dims.comp_offset[size_t(g) + 1];
      cblocks = std::max(cblocks, uint32_t(b - a + merge_dims - 1) / merge_dims);
    }
  const Pipeline& merge_p =
      pipelines_.get("split_attention_merge", {D, NF, spec_v ? 1u : 0u, inline_sum ? 1u : 0u, lanes}, 7);
  const uint32_t mc[] = {count, H, uint32_t(s.n_kv_heads), uint32_t(nk_v), main_chunks, h_first, midc};
  rec_.dispatch(
      merge_p,
      {bind(sums, false), bind(&out, true), bind(spec_v ? c.v.coef : nullptr, false),
       bind(spec_v ? c.v.norm : nullptr, false), bind(spec_v ? c.v.dims_table : nullptr, false),
       bind(inline_sum ? &partials : nullptr, false), bind(inline_sum ? mid_partials : nullptr, false)},
      mc, sizeof(mc), cblocks, qh_y, qh_z);
}

}  // namespace fkv
