// The Vulkan Backend: each op of backend.h becomes one or two compute dispatches recorded by
// CommandRecorder. Tensors larger than one storage binding may cover (maxStorageBufferRange) are bound in
// pieces: weights by row ranges, the embedding table by row ranges with each piece serving the tokens
// that fall in it.
#include "backend/vulkan/vulkan_backend.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/vulkan/vulkan_attention_plan.h"
#include "backend/vulkan/vulkan_commands.h"
#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_env.h"
#include "backend/vulkan/vulkan_memory.h"
#include "backend/vulkan/vulkan_pipelines.h"
#include "backend/vulkan/vulkan_split_kv.h"
#include "model/quant.h"
#include "util/error.h"

namespace fkv {
namespace {

constexpr uint32_t kWorkgroup = 128;      // matmul, norms, element-wise: the Vulkan minimum maximum
constexpr uint32_t kMatmulTokens = 16;    // tokens per workgroup, GPU prefill of up to 16 tokens
constexpr uint32_t kTiledMinTokens = 17;  // from here on GPU prefill uses the 64 x 64 tiled kernel
constexpr uint32_t kMaxGroupsX = 65535;
constexpr int kRopeRowsAhead = 1024;  // RoPE table rows appended at a time
// matvec_fused.comp: weights, x, outputs, RoPE table, position, caches, the norm fold's sums
constexpr uint32_t kFusedBindings = 12;
// The norm fold's accumulator slots (common/norm_sum.glsl: two 64-bit totals each); a step's folds take
// slots 0, 1, ... (two a layer), and the first zeroes them all.
constexpr uint32_t kNormSlots = 256;
constexpr size_t kNormSumBytes = size_t(kNormSlots) * 16;
// The WTYPE specialization constant of Q4_0 repacked by upload_weight (model/quant.h Q4_0x8): past every
// ggml type id; shaders/common/dequant.glsl T_Q4_0X8.
constexpr uint32_t kTypeQ4_0x8 = 256 + uint32_t(GgmlType::Q4_0);

const VulkanBuffer& vk(const DeviceBuffer& b) {
  return static_cast<const VulkanBuffer&>(b);
}

void check_range(const DeviceBuffer& b, size_t offset, size_t bytes, const char* op) {
  require(offset <= b.size() && bytes <= b.size() - offset, ErrorCode::kInvalidArgument,
          std::string(op) + ": range past the end of the buffer");
}

uint32_t u32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

class VulkanBackend : public Backend {
 public:
  explicit VulkanBackend(int device)
      : ctx_(std::make_shared<VulkanContext>(device)),
        pipelines_(ctx_),
        rec_(ctx_),
        split_kv_(ctx_, pipelines_, rec_),
        cpu_device_(ctx_->cpu_kernels()) {}
  ~VulkanBackend() override { rec_.print_unreported_profile(); }

  std::string name() const override { return "vulkan"; }
  const ReplayStats& replay_stats() const { return rec_.replay_stats(); }
  void set_replay(bool on) { rec_.set_replay(on); }
  CommandRecorder& recorder() { return rec_; }
  // Whether decode folds residual adds and norms into matvecs (fold_norm; vulkan_norm_fold()).
  bool norm_fold_on() const { return fuse_ && norm_fold_ && ctx_->int64_atomics() && !cpu_device_; }

  void set_fusion(bool on) {
    rec_.flush();  // records what is held
    fuse_ = on;
  }
  void set_attention_target(uint32_t target) { attn_target_ = target > 0 ? target : default_attn_target(); }
  void drop_scratch() {
    rec_.flush();
    rope_table_.reset();
    partials_.reset();
    arrivals_.reset();
    rope_rows_ = 0;
  }
  std::string device_name() const override { return ctx_->device_name(); }

  BufferPtr alloc(size_t bytes, const std::string& what) override {
    return std::make_shared<VulkanBuffer>(ctx_, bytes, MemoryKind::kDevice, what);
  }
  void upload(DeviceBuffer& dst, size_t offset, const void* src, size_t bytes) override {
    check_range(dst, offset, bytes, "upload");
    static_cast<VulkanBuffer&>(dst).set_q4_0x8(false);  // the bytes are the caller's, as given
    rec_.upload(vk(dst), offset, src, bytes);
  }
  // Q4_0 rows of a multiple of 256 values are repacked into runs of 8 blocks, scales apart from nibbles
  // (model/quant.h Q4_0x8), so that the decode matvec reads them with aligned loads; the shaders read them
  // as type kTypeQ4_0x8. Everything else keeps the GGUF layout.
  void upload_weight(const Weight& w, const void* data, size_t bytes) override {
    const size_t rb = row_bytes(w.type, w.cols);
    if (!repack_ || !q4_0x8_applies(w.type, w.cols) || bytes != size_t(w.rows) * rb)
      return upload(*w.buf, 0, data, bytes);
    check_range(*w.buf, 0, bytes, "upload_weight");
    upload_repacked_q4_0x8(*this, w, data, 16u << 20);  // the recorder copies each slice into staging at once
    static_cast<VulkanBuffer&>(*w.buf).set_q4_0x8(true);
  }
  void download(const DeviceBuffer& src, size_t offset, void* dst, size_t bytes) override {
    check_range(src, offset, bytes, "download");
    rec_.download(vk(src), offset, dst, bytes);
  }
  // A step's norm folds take accumulator slots from 0 again (fold_norm), so that a replayed step's commands
  // are the same at every position.
  void begin_step(int pos0, int n) override {
    (void)pos0;
    (void)n;
    norm_slot_ = 0;
  }

  // argmax.comp, one workgroup of up to 1024 invocations; FKV_VULKAN_ARGMAX=0 leaves it to the host (for
  // comparisons).
  std::optional<int32_t> argmax(const DeviceBuffer& x, int64_t n) override {
    if (!argmax_on_ || n <= 0 || n > INT32_MAX) return std::nullopt;
    check_range(x, 0, size_t(n) * 4, "argmax");
    if (!argmax_out_) argmax_out_ = alloc(16, "argmax result");
    const uint32_t wg = std::bit_floor(std::min<uint32_t>(ctx_->max_workgroup_size(), 1024));
    const Pipeline& p = pipelines_.get("argmax", {wg}, 2);
    const Binding xb = window(x, 0, size_t(n) * 4, false);
    const uint32_t pc[] = {uint32_t(n), delta(xb, 0) / 4};
    rec_.dispatch(p, {xb, window(*argmax_out_, 0, 8, true)}, pc, sizeof(pc), 1, 1, 1);
    uint32_t r[2] = {0, 0};
    rec_.download(vk(*argmax_out_), 0, r, sizeof(r));
    if (r[1] == 0) return std::nullopt;
    return int32_t(r[0]);
  }
  void copy(const DeviceBuffer& src, size_t src_offset, DeviceBuffer& dst, size_t dst_offset,
            size_t bytes) override {
    check_range(src, src_offset, bytes, "copy");
    check_range(dst, dst_offset, bytes, "copy");
    rec_.copy(vk(src), src_offset, vk(dst), dst_offset, bytes);
  }
  void synchronize() override { rec_.flush(); }

  void embed(const Weight& table, const DeviceBuffer& tokens, int n, DeviceBuffer& out) override {
    if (n <= 0) return;
    const size_t rb = row_bytes(table.type, table.cols);
    const Pipeline& p = pipelines_.get("embed", {kWorkgroup, shader_type(table)}, 3);
    const Binding tok = window(tokens, 0, size_t(n) * 4, false);
    const Binding dst = window(out, 0, size_t(n) * table.cols * 4, true);
    const int64_t piece = rows_per_binding(rb);
    for (int64_t lo = 0; lo < table.rows; lo += piece) {
      const int64_t hi = std::min(table.rows, lo + piece);
      const Binding w = window(*table.buf, size_t(lo) * rb, size_t(hi - lo) * rb, false);
      const uint32_t pc[] = {uint32_t(table.cols), uint32_t(lo), uint32_t(hi), delta(w, size_t(lo) * rb)};
      rec_.dispatch(p, {w, tok, dst}, pc, sizeof(pc), uint32_t(n), 1, 1);
    }
  }

  void rms_norm(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim, float eps,
                DeviceBuffer& out) override {
    if (n <= 0) return;
    const size_t bytes = size_t(n) * dim * 4;
    const uint32_t pc[] = {uint32_t(dim), u32(eps)};
    if (fuse_with_held_add(x, w, n, dim, pc, out)) return;
    const Pipeline& p = norm_pipeline(false, dim);
    rec_.dispatch(
        p, {window(x, 0, bytes, false), window(w, 0, size_t(dim) * 4, false), window(out, 0, bytes, true)},
        pc, sizeof(pc), uint32_t(n), 1, 1);
  }

  void matmul(const Weight& w, const DeviceBuffer& x, int n, DeviceBuffer& out) override {
    if (n <= 0 || w.rows == 0) return;
    if (n == 1 && fuse_ && hold_matvec(w, x, out)) return;
    const size_t rb = row_bytes(w.type, w.cols);
    // GPU prefill: 64 x 64 output tiles (matmul_tiled.comp). Otherwise matmul.comp: decode, and CPU devices.
    const bool tiled = !cpu_device_ && uint32_t(n) >= kTiledMinTokens && ctx_->max_workgroup_size() >= 256;
    const uint32_t nt = tiled ? 64 : n == 1 ? 1 : cpu_device_ ? 8 : kMatmulTokens;
    const uint32_t tpr = cpu_device_ ? 1 : 32, wg = cpu_device_ ? 32 : kWorkgroup;
    // GPU decode of block-quantized weights: two rows per thread share each activation load.
    const bool quantized = type_traits(w.type).block_elems > 1;
    const uint32_t rpt = !cpu_device_ && n == 1 && quantized ? 2 : 1;
    const uint32_t rows_per_group = tiled ? 64 : wg / tpr * rpt;
    const uint32_t wtype = shader_type(w);
    const Pipeline& p = tiled ? pipelines_.get("matmul_tiled", {256, wtype}, 3)
                              : pipelines_.get("matmul", {wg, wtype, tpr, nt, wg, rpt}, 3);
    const int64_t row_piece = rows_per_binding(rb);
    const size_t out_row = size_t(w.rows) * 4, x_row = size_t(w.cols) * 4;
    const int64_t tok_piece =
        int64_t((ctx_->max_binding() - ctx_->binding_alignment()) / std::max(out_row, x_row));
    require(tok_piece >= 1, ErrorCode::kUnsupported,
            "matmul: one row of activations exceeds a storage binding");
    for (int64_t i0 = 0; i0 < n; i0 += tok_piece) {
      const int64_t ni = std::min<int64_t>(n - i0, tok_piece);
      const Binding xb = window(x, size_t(i0) * x_row, size_t(ni) * x_row, false);
      const Binding ob = window(out, size_t(i0) * out_row, size_t(ni) * out_row, true);
      for (int64_t r0 = 0; r0 < w.rows; r0 += row_piece) {
        const int64_t nr = std::min(w.rows - r0, row_piece);
        const Binding wb = window(*w.buf, size_t(r0) * rb, size_t(nr) * rb, false);
        const uint32_t pc[] = {uint32_t(nr),
                               uint32_t(w.cols),
                               uint32_t(ni),
                               delta(wb, size_t(r0) * rb),
                               delta(xb, size_t(i0) * x_row) / 4,
                               delta(ob, size_t(i0) * out_row) / 4 + uint32_t(r0),
                               uint32_t(w.rows)};
        if (const Pipeline* mv = matvec_pipeline(w, wtype, ni, pc[3], pc[4])) {
          const auto [gx, gz] = split(uint32_t((nr + matvec_rows(w.type) - 1) / matvec_rows(w.type)));
          rec_.dispatch(*mv, {wb, xb, ob}, pc, sizeof(pc), gx, 1, gz);
          continue;
        }
        const uint32_t groups = uint32_t((nr + rows_per_group - 1) / rows_per_group);
        const auto [gx, gz] = split(groups);
        rec_.dispatch(p, {wb, xb, ob}, pc, sizeof(pc), gx, uint32_t((ni + nt - 1) / nt), gz);
      }
    }
  }

  // Rows per workgroup of matvec.comp: F16 two (16-byte loads, 8 in flight per thread), quantized four
  // (each slot's activations serve four rows; the weight loads are narrow).
  // FKV_VULKAN_MV_ROWS / FKV_VULKAN_MV_UNROLL (quantized types) and FKV_VULKAN_MV_WG override the rows per
  // workgroup, the slots per thread in flight and the workgroup size (tuning on a GPU; read once).
  static uint32_t matvec_rows(GgmlType t) {
    static const uint32_t quant = env_count("FKV_VULKAN_MV_ROWS", 4);
    return t == GgmlType::F16 ? 2 : quant;
  }
  // Slots in flight: Q4_0 two (half the loads a round, twice the rounds; on one H100 every 8B-shape matvec
  // was faster and decode +6-8%, on others 0-3%: docs/PERFORMANCE.md "Two Q4_0 slots in flight"), F16 and
  // the other quantized types four (F16 insensitive, Q4_1 level on an H100, Q8_0 not re-measured).
  static uint32_t matvec_unroll(GgmlType t) {
    static const uint32_t quant = env_count("FKV_VULKAN_MV_UNROLL", 0);
    if (t == GgmlType::F16) return 4;
    return quant != 0 ? quant : t == GgmlType::Q4_0 ? 2 : 4;
  }
  static uint32_t matvec_wg() {
    static const uint32_t wg = env_count("FKV_VULKAN_MV_WG", kWorkgroup);
    return wg;
  }

  // The GPU decode matvec (shaders/common/matvec.glsl) when it applies to this piece, else nullptr
  // (matmul.comp then): one token, not a CPU device, F16 / Q4_0 (either layout) / Q4_1 / Q8_0, activations
  // 16-byte aligned, F16 rows 16-byte aligned (its 16-byte loads).
  const Pipeline* matvec_pipeline(const Weight& w, uint32_t wtype, int64_t n, uint32_t w_base,
                                  uint32_t x_base) {
    if (n != 1 || cpu_device_ || !matvec_ || x_base % 4 != 0) return nullptr;
    switch (w.type) {
      case GgmlType::F16:
        if (w.cols % 8 != 0 || w_base % 16 != 0) return nullptr;
        break;
      case GgmlType::Q4_0:
      case GgmlType::Q4_1:
      case GgmlType::Q8_0:
        break;
      default:
        return nullptr;
    }
    return &pipelines_.get(ctx_->subgroup_arithmetic() ? "matvec_subgroup" : "matvec",
                           {matvec_wg(), wtype, matvec_wg(), matvec_rows(w.type), matvec_unroll(w.type)}, 3);
  }

  // Decode matvecs that read one x are one dispatch (matvec_fused.comp): each matvec the decode matvec
  // takes, with its weight in one binding, is held back (CommandRecorder::hold) as its own dispatch; the
  // next one of the same x, weight type, layout and row length joins it (up to three: q, k and v; gate and
  // up), and a SwiGLU of a held gate and up into gate's output folds into them (fold_swiglu). Anything else
  // records what is held first, so the order of commands is kept. True when held.
  bool hold_matvec(const Weight& w, const DeviceBuffer& x, DeviceBuffer& out) {
    const size_t rb = row_bytes(w.type, w.cols);
    const uint32_t wtype = shader_type(w);
    const Pipeline* mv = matvec_pipeline(w, wtype, 1, 0, 0);
    if (!mv || w.rows > rows_per_binding(rb)) return false;
    const VulkanBuffer &xv = vk(x), &ov = vk(out), &wv = vk(*w.buf);
    // A product written over its own input or weight would race in any form.
    if (ov.handle() == xv.handle() || ov.handle() == wv.handle()) return false;
    const Binding wb = window(*w.buf, 0, size_t(w.rows) * rb, false);
    const Binding xb = window(x, 0, size_t(w.cols) * 4, false);
    const Binding ob = window(out, 0, size_t(w.rows) * 4, true);
    const Command::Ref wr = ref_of(wb), xr = ref_of(xb), orf = ref_of(ob);
    // Held alone or with others, this product's rows get written: a norm fold's output there is no longer
    // needed (fold_norm).
    rec_.overwrite_pending(orf, size_t(w.rows) * 4);
    HeldMatvec& h = held_mv_;
    if (held_matvecs() > 0 && h.count < 3 && h.wtype == wtype && h.cols == w.cols && same_ref(h.x, xr)) {
      // Joins when no held product writes what this one reads or writes, nor reads what it writes.
      bool independent = true;
      for (int t = 0; t < h.count; ++t)
        independent = independent && h.out[t].handle != ov.handle() && h.out[t].handle != wv.handle() &&
                      h.w[t].handle != ov.handle();
      if (independent) {
        h.w[h.count] = wr;
        h.out[h.count] = orf;
        h.rows[h.count] = w.rows;
        ++h.count;
        const Command c = fused_matvec_command(false, xb);
        rec_.drop_held();
        rec_.hold(c);
        h.pipeline = c.pipeline;
        return true;
      }
    }
    const uint32_t pc[] = {uint32_t(w.rows), uint32_t(w.cols), 1u, 0u, 0u, 0u, uint32_t(w.rows)};
    const auto [gx, gz] = split(uint32_t((w.rows + matvec_rows(w.type) - 1) / matvec_rows(w.type)));
    const Command c = rec_.make_dispatch(*mv, {wb, xb, ob}, pc, sizeof(pc), gx, 1, gz);
    rec_.hold(c);
    h = HeldMatvec{};
    h.pipeline = mv;
    h.type = w.type;
    h.wtype = wtype;
    h.cols = w.cols;
    h.count = 1;
    h.x = xr;
    h.w[0] = wr;
    h.out[0] = orf;
    h.rows[0] = w.rows;
    return true;
  }

  // How many matvecs the command CommandRecorder holds computes (0: it holds none).
  int held_matvecs() const {
    const Command* c = rec_.held();
    return c && !rec_.held_before() && c->pipeline == held_mv_.pipeline ? held_mv_.count : 0;
  }

  // The held matvecs as one dispatch of matvec_fused.comp; swiglu: gate and up with SwiGLU into gate's
  // output (two targets of equal rows; matvec_rows() is even). `live` is any binding of a live buffer:
  // make_dispatch checks the bindings it gets, and the held ones were checked when they were made, so their
  // refs replace them.
  // rope: matvec_fused.comp's ROPE_STORE mode (0 none, 1 RoPE of q and K and the K/V cache store, 2 the
  // RoPE only).
  Command fused_matvec_command(bool swiglu, const Binding& live, uint32_t rope = 0) {
    const HeldMatvec& h = held_mv_;
    const uint32_t r = matvec_rows(h.type), unroll = matvec_unroll(h.type), wg = matvec_wg();
    // x is the norm fold's output (fuse_with_held_add): the products apply the norm's scale.
    const bool scaled = rec_.pending_is(h.x) && norm_sums_;
    const Pipeline& p = pipelines_.get(ctx_->subgroup_arithmetic() ? "matvec_fused_subgroup" : "matvec_fused",
                                       {wg, h.wtype, wg, r, unroll, swiglu ? 1u : 0u, rope, scaled ? 1u : 0u},
                                       kFusedBindings);
    // Unused target slots repeat the last target; no workgroup reaches them.
    uint32_t groups[3], first[3] = {0, 0, 0}, total = 0;
    for (int t = 0; t < 3; ++t) {
      groups[t] = t < h.count ? uint32_t((h.rows[t] + r - 1) / r) : 0u;
      first[t] = t < h.count ? total : UINT32_MAX;
      total += groups[t];
    }
    const int last = h.count - 1;
    const auto target = [&](int t) { return std::min(t, last); };
    if (swiglu) total = uint32_t((h.rows[0] + r / 2 - 1) / (r / 2));  // r / 2 rows of gate and of up each
    const uint32_t pc[] = {uint32_t(h.cols),
                           uint32_t(h.rows[0]),
                           uint32_t(h.rows[target(1)]),
                           uint32_t(h.rows[target(2)]),
                           first[1],
                           first[2]};
    const auto [gx, gz] = split(total);
    Command c = rec_.make_dispatch(p, std::vector<Binding>(kFusedBindings, live), pc, sizeof(pc), gx, 1, gz);
    for (int t = 0; t < 3; ++t) {
      c.refs[t] = h.w[target(t)];
      c.refs[4 + t] = h.out[target(t)];
    }
    c.refs[3] = h.x;
    for (uint32_t b = 7; b < kFusedBindings; ++b) c.refs[b] = h.x;  // the RoPE bindings, untouched here
    if (scaled) {
      c.refs[11] = ref_of(window(*norm_sums_, 0, kNormSumBytes, false));
      const uint32_t norm[] = {pending_norm_.slot, u32(pending_norm_.eps)};
      std::memcpy(c.push + 12 * 4, norm, sizeof(norm));
      c.push_bytes = 14 * 4;
      c.applies_pending = true;
    }
    return c;
  }

  // SwiGLU of the held gate and up products (in that order, equal rows) into gate's output, as the engine
  // runs it: one dispatch computes both products and silu(gate) * up (matvec_fused.comp SWIGLU 1), and
  // leaves up's product in its output as the separate ops would. True when recorded.
  bool fold_swiglu(const DeviceBuffer& gate, const DeviceBuffer& up, int64_t count, const DeviceBuffer& out) {
    if (!fuse_ || !fold_swiglu_ || held_matvecs() != 2) return false;
    const HeldMatvec& h = held_mv_;
    if (!starts(h.out[0], gate) || !starts(h.out[1], up) || !starts(h.out[0], out) || h.rows[0] != count ||
        h.rows[1] != count)
      return false;
    const Command c = fused_matvec_command(true, window(out, 0, size_t(count) * 4, true));
    rec_.drop_held();
    rec_.record(c);
    return true;
  }

  static Command::Ref ref_of(const Binding& b) {
    return Command::Ref{b.buf->handle(), b.buf->serial(), b.offset, b.range, b.write};
  }

  void rope(DeviceBuffer& x, int n, int n_heads, int pos0, const RopeParams& rp) override {
    if (n <= 0) return;
    const uint32_t pairs = uint32_t(rp.head_dim / 2);
    const VulkanBuffer& table = rope_table(pos0 + n, rp);
    const size_t row = size_t(pairs) * 8;
    // The whole table in one binding when it fits (the same binding at every position), else from pos0 on.
    const bool whole = table.capacity() <= ctx_->max_binding();
    const uint32_t origin = whole ? 0 : uint32_t(pos0);
    const Binding tb = window(table, size_t(origin) * row, whole ? table.capacity() : size_t(n) * row, false);
    const Pipeline& p = pipelines_.get("rope", {kWorkgroup}, 3);
    const uint32_t pc[] = {uint32_t(n), uint32_t(n_heads), pairs, delta(tb, size_t(origin) * row) / 8,
                           origin};
    const size_t total = size_t(n) * n_heads * pairs;
    const auto [gx, gz] = split(uint32_t(std::min<size_t>((total + kWorkgroup - 1) / kWorkgroup, 16384)));
    rec_.set_position(uint32_t(pos0));
    const Command c =
        rec_.make_dispatch(p, {window(x, 0, size_t(n) * n_heads * rp.head_dim * 4, true), tb, position()}, pc,
                           sizeof(pc), gx, 1, gz);
    if (!fuse_) return rec_.record(c);
    // Held back: when the next op stores this K into an f16 cache, both run as one dispatch. The RoPE of K
    // right after that of q (same tokens and positions, another buffer) is held with it, so that the store
    // of K and V makes one dispatch of all three (rope_kv_store.comp).
    const HeldRope h{n, n_heads, pairs, pos0, {pc[3], pc[4]}};
    const Command* prev = rec_.held();
    // The RoPE of q right after the fused q/k/v matvec that wrote q, and then that of K, are held with it:
    // the store of K and V may then fold all of them into the matvec (store_held_rope).
    if (rope_fold_ && n == 1 && held_matvecs() == 3 && same_range(held_mv_.out[0], c.refs[0])) {
      rec_.hold_also(c);
      held_rope_ = h;
      return;
    }
    if (rope_fold_ && n == 1 && rec_.held_count() == 2 && prev->pipeline == &p && held_qkv_first() &&
        same_range(held_mv_.out[1], c.refs[0]) && held_rope_.n == n && held_rope_.pairs == pairs &&
        held_rope_.pos0 == pos0 && held_rope_.table[0] == h.table[0] && held_rope_.table[1] == h.table[1] &&
        same_ref(prev->refs[1], c.refs[1])) {
      rec_.hold_also(c);
      held_q_ = held_rope_;
      held_rope_ = h;
      return;
    }
    if (prev && !rec_.held_before() && prev->pipeline == &p && held_rope_.n == n &&
        held_rope_.pairs == pairs && held_rope_.pos0 == pos0 && held_rope_.table[0] == h.table[0] &&
        held_rope_.table[1] == h.table[1] && same_ref(prev->refs[1], c.refs[1]) &&
        prev->refs[0].handle != c.refs[0].handle) {
      rec_.hold_also(c);
      held_q_ = held_rope_;
    } else {
      rec_.hold(c);
    }
    held_rope_ = h;
  }

  void swiglu(const DeviceBuffer& gate, const DeviceBuffer& up, int64_t count, DeviceBuffer& out) override {
    if (fold_swiglu(gate, up, count, out)) return;
    elementwise(1, gate, up, count, out);
  }
  void add(const DeviceBuffer& a, const DeviceBuffer& b, int64_t count, DeviceBuffer& out) override {
    elementwise(0, a, b, count, out);
  }

  void kv_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                KvLayer& cache) override {
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull,
            "KV cache holds " + std::to_string(cache.capacity) + " positions; asked to store up to " +
                std::to_string(pos0 + n));
    if (n <= 0) return;
    const size_t row = size_t(s.n_kv_heads) * s.head_dim;
    const size_t count = size_t(n) * row;
    if (cache.type == KvType::kF32) {
      copy(k, 0, *cache.k, size_t(pos0) * row * 4, count * 4);
      copy(v, 0, *cache.v, size_t(pos0) * row * 4, count * 4);
      return;
    }
    require(row % 2 == 0, ErrorCode::kUnsupported, "kv_store: an f16 cache row must hold an even count");
    if (store_held_rope(k, v, n, pos0, s, cache)) return;
    const Pipeline& p = pipelines_.get("kv_store", {kWorkgroup}, 3);
    const auto [gx, gz] = split(uint32_t(std::min<size_t>((count / 2 + kWorkgroup - 1) / kWorkgroup, 16384)));
    rec_.set_position(uint32_t(pos0));
    for (int kv = 0; kv < 2; ++kv) {
      const DeviceBuffer& src = kv == 0 ? k : v;
      const DeviceBuffer& dst = kv == 0 ? *cache.k : *cache.v;
      const auto [db, dc] = cache_rows(dst, n, pos0, row, cache.capacity);
      const uint32_t pc[] = {uint32_t(count / 2), dc.base, dc.origin, uint32_t(row / 2)};
      rec_.dispatch(p, {window(src, 0, count * 4, false), db, position()}, pc, sizeof(pc), gx, 1, gz);
    }
  }

  void attention(const DeviceBuffer& q, int n, int pos0, const AttentionShape& s, const KvLayer& cache,
                 DeviceBuffer& out) override {
    require(pos0 >= 0 && pos0 + n <= cache.capacity, ErrorCode::kContextFull, "attention past the KV cache");
    require(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && s.head_dim > 0 && s.head_dim % 2 == 0,
            ErrorCode::kInvalidArgument, "attention: bad head shape");
    if (n <= 0) return;
    const uint32_t d = uint32_t(s.head_dim);
    const size_t heads = size_t(s.n_heads);
    // Split the keys so that n * head blocks * chunks workgroups fill the GPU (vulkan_attention_plan.h);
    // prefill has enough queries already. `want` chunk workgroups are dispatched whatever the position (the
    // shaders compute how many of them the length needs, common/attention_chunks.glsl), so that the
    // dispatch is the same at every step. CPU devices run workgroups a few at a time, and each empty one
    // still costs: few chunks there.
    AttentionPlan plan =
        plan_attention(n, s, cache.type, attn_target_, ctx_->properties().limits.maxComputeSharedMemorySize);
    const size_t partial_row = size_t(attention_partial_stride(d)) * 4;
    // Keep the partials within one binding.
    while (plan.want > 1 && size_t(n) * heads * plan.want * partial_row > ctx_->max_binding()) plan.want /= 2;
    const size_t partial_bytes = size_t(n) * heads * plan.want * partial_row;
    require(partial_bytes <= ctx_->max_binding(), ErrorCode::kUnsupported,
            "attention: the partial results of " + std::to_string(n) + " queries exceed one storage binding");
    if (!partials_ || partials_->size() < partial_bytes)
      partials_ =
          std::make_shared<VulkanBuffer>(ctx_, std::max(partial_bytes, size_t(kAttnGpuTarget) * partial_row),
                                         MemoryKind::kDevice, "attention partials");
    const size_t kv_bytes = size_t(cache.capacity) * s.n_kv_heads * d * kv_type_bytes(cache.type);
    const uint32_t f16 = cache.type == KvType::kF16 ? 1u : 0u;
    // The grouped split merges its chunks itself (attention_split.comp MERGE_LAST) when fusing: one
    // dispatch instead of two. Its arrival counters start at 0 and the last workgroup resets them.
    const bool merge_last = plan.grouped && fuse_ && merge_last_;
    const Pipeline& split_p =
        plan.grouped
            ? pipelines_.get("attention_split",
                             {kAttnGroupedWorkgroup, kAttnGroupedWorkgroup, d, f16, plan.heads_per_wg,
                              plan.tile, plan.span, merge_last ? 1u : 0u},
                             7)
            : pipelines_.get("attention_split_rows", {kAttnRowsWorkgroup, kAttnRowsWorkgroup, d, f16}, 5);
    const uint32_t pc[] = {uint32_t(n),  uint32_t(s.n_heads), uint32_t(s.n_kv_heads),
                           u32(s.scale), plan.want,           plan.min_chunk};
    const size_t qo_bytes = size_t(n) * heads * d * 4;
    const Binding part = window(*partials_, 0, partial_bytes, true);
    const Binding qb = window(q, 0, qo_bytes, false), ob = window(out, 0, qo_bytes, true);
    std::vector<Binding> split_bindings = {qb, window(*cache.k, 0, kv_bytes, false),
                                           window(*cache.v, 0, kv_bytes, false), part, position()};
    if (plan.grouped) {
      // Without the merge, bindings 5 and 6 are not touched; the partials stand in for them.
      const size_t count_bytes = size_t(n) * plan.head_blocks * 4;
      if (merge_last)
        split_bindings.push_back(window(
            arrival_counters(arrivals_, count_bytes, "attention arrival counters"), 0, count_bytes, true));
      else
        split_bindings.push_back(part);
      split_bindings.push_back(merge_last ? ob : part);
    }
    rec_.set_position(uint32_t(pos0));
    rec_.dispatch(split_p, split_bindings, pc, sizeof(pc), plan.want, plan.head_blocks, uint32_t(n));
    if (merge_last) return;
    const uint32_t blocks = (d + kAttnMergeDims - 1) / kAttnMergeDims;
    const Pipeline& merge_p =
        pipelines_.get("attention_merge", {kAttnMergeWorkgroup, kAttnMergeWorkgroup, d, kAttnMergeDims}, 3);
    const uint32_t groups = uint32_t(n * heads * blocks);
    const uint32_t mc[] = {uint32_t(n), groups, plan.want, plan.tile, plan.min_chunk};
    const auto [gx, gz] = split(groups);
    Binding part_in = part;
    part_in.write = false;
    rec_.dispatch(merge_p, {part_in, ob, position()}, mc, sizeof(mc), gx, 1, gz);
  }

  // The arrival counters of attention_split.comp's MERGE_LAST: at least `bytes`, all zero (each dispatch
  // leaves them so). Grown, and zeroed by an upload, only when a longer prefill needs more.
  const VulkanBuffer& arrival_counters(std::shared_ptr<VulkanBuffer>& counters, size_t bytes,
                                       const char* what) {
    if (!counters || counters->size() < bytes) {
      const size_t size = std::max<size_t>(bytes, 4096);
      counters = std::make_shared<VulkanBuffer>(ctx_, size, MemoryKind::kDevice, what);
      const std::vector<uint8_t> zeros(size, 0);
      rec_.upload(*counters, 0, zeros.data(), size);
    }
    return *counters;
  }

  // Split KV cache (window, fourier policies): native shaders, vulkan_split_kv.cpp (docs/VULKAN.md).
  void split_kv_append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                       SplitKvLayer& cache) override {
    if (rope_fold_) fold_rope_only(k);  // a store without attention (split_attention folds otherwise)
    split_kv_.append(k, v, n, pos0, s, cache);
  }
  void split_attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                       const AttentionShape& s, const SplitKvLayer& cache, SplitAttentionPath path,
                       DeviceBuffer& out) override {
    // K and V come right after their RoPEs: those fold into the held q/k/v matvec.
    if (rope_fold_) fold_rope_only(k);
    split_kv_.attention(q, k, v, n, pos0, s, cache, path, out);
  }
  void fourier_project(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                       DeviceBuffer& coef) override {
    split_kv_.project(values, 0, rows, n_comp, m0, period, n_freq, coef, true);
  }
  void fourier_accumulate(const DeviceBuffer& values, int rows, int n_comp, int m0, int period, int n_freq,
                          DeviceBuffer& coef) override {
    split_kv_.project(values, 0, rows, n_comp, m0, period, n_freq, coef, false);
  }

 private:
  using Buffer = std::shared_ptr<VulkanBuffer>;

  // A binding that covers [offset, offset + bytes) of buf, starting at the aligned offset at or below.
  Binding window(const DeviceBuffer& buf, size_t offset, size_t bytes, bool write) const {
    const VulkanBuffer& b = vk(buf);
    const VkDeviceSize start = offset - offset % ctx_->binding_alignment();
    const VkDeviceSize range = std::min(b.capacity() - start, ctx_->max_binding());
    require(offset + bytes <= b.capacity() && offset + bytes - start <= range, ErrorCode::kUnsupported,
            "a tensor of " + std::to_string(bytes) + " bytes is larger than one Vulkan storage binding (" +
                std::to_string(ctx_->max_binding()) + " bytes on " + ctx_->device_name() + ")");
    return Binding{&b, start, range, write};
  }
  static uint32_t delta(const Binding& b, size_t offset) { return uint32_t(offset - b.offset); }

  // The WTYPE specialization constant of the shaders that read weight w: its ggml type, or kTypeQ4_0x8
  // where upload_weight repacked its buffer. The shaders read Q4_0x8 runs as aligned words: a run starts at
  // a multiple of 16 bytes in every binding, since rows are multiples of 144 bytes, so piece offsets are
  // multiples of 16, and binding offsets are aligned down to a power of two.
  static uint32_t shader_type(const Weight& w) {
    if (!vk(*w.buf).q4_0x8()) return uint32_t(w.type);
    require(q4_0x8_applies(w.type, w.cols), ErrorCode::kInvalidArgument,
            "a weight buffer repacked as Q4_0 rows of a multiple of 256 values is read as " +
                type_name(uint32_t(w.type)) + " rows of " + std::to_string(w.cols) + " values");
    return kTypeQ4_0x8;
  }

  // The position register that rope, kv_store and attention read pos0 from (CommandRecorder::set_position).
  Binding position() const { return window(rec_.position_buffer(), 0, 4, false); }

  int64_t rows_per_binding(size_t row_bytes) const {
    const int64_t rows = int64_t((ctx_->max_binding() - ctx_->binding_alignment()) / row_bytes);
    require(rows >= 1, ErrorCode::kUnsupported, "a weight row is larger than one Vulkan storage binding");
    return rows;
  }

  // Workgroup counts over x (at most 65535) and z.
  static std::pair<uint32_t, uint32_t> split(uint32_t groups) {
    if (groups <= kMaxGroupsX) return {groups, 1};
    return {kMaxGroupsX, (groups + kMaxGroupsX - 1) / kMaxGroupsX};
  }

  void elementwise(uint32_t op, const DeviceBuffer& a, const DeviceBuffer& b, int64_t count,
                   DeviceBuffer& out) {
    if (count <= 0) return;
    const Pipeline& p = pipelines_.get("elementwise", {kWorkgroup, op}, 3);
    const size_t bytes = size_t(count) * 4;
    const uint32_t pc[] = {uint32_t(count)};
    const auto [gx, gz] = split(uint32_t(std::min<int64_t>((count + kWorkgroup - 1) / kWorkgroup, 16384)));
    const Command c = rec_.make_dispatch(
        p, {window(a, 0, bytes, false), window(b, 0, bytes, false), window(out, 0, bytes, true)}, pc,
        sizeof(pc), gx, 1, gz);
    // An add is held back: when the next op is the RMSNorm of its sum (the residual stream of a layer),
    // both run as one dispatch (add_rms_norm.comp).
    if (op == 0 && fuse_) {
      // The residual add of a held decode matvec's product (o, down) is held with it: the norm of its sum may
      // fold all three (fuse_with_held_add).
      if (norm_fold_on() && held_matvecs() == 1 && held_mv_.rows[0] == count &&
          same_range(held_mv_.out[0], c.refs[1]) && same_range(c.refs[0], c.refs[2]) &&
          c.refs[0].handle != held_mv_.x.handle)
        rec_.hold_also(c);
      else
        rec_.hold(c);
      held_add_count_ = count;
    } else {
      rec_.record(c);
    }
  }

  // Where kv_store writes rows pos0 .. pos0+n-1 of an f16 cache with `row` values per row: the whole cache
  // in one binding when it fits (the same binding at every position), else a window from pos0 on; base is
  // the word offset of row `origin` in that binding.
  struct CacheRows {
    uint32_t base, origin;
  };
  std::pair<Binding, CacheRows> cache_rows(const DeviceBuffer& dst, int n, int pos0, size_t row,
                                           int capacity) const {
    const size_t cache_bytes = size_t(capacity) * row * 2;
    const bool whole = cache_bytes <= ctx_->max_binding();
    const uint32_t origin = whole ? 0 : uint32_t(pos0);
    const size_t first = size_t(origin) * row * 2;
    const Binding db = window(dst, first, whole ? cache_bytes : size_t(n) * row * 2, true);
    return {db, CacheRows{delta(db, first) / 4, origin}};
  }

  // The store of K and V into an f16 cache right after the RoPE of K (held back by rope()), and of q when
  // that was held before it, fused into one dispatch (rope_kv_store.comp): true when recorded.
  bool store_held_rope(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                       KvLayer& cache) {
    const Pipeline& rope_p = pipelines_.get("rope", {kWorkgroup}, 3);
    if (rec_.held_count() == 3) {
      if (fold_rope_store(k, v, n, pos0, s, cache)) return true;
      rec_.record_first_held();  // the q/k/v matvec; the two RoPEs stay held for the path below
    }
    const Command* rope = rec_.held();
    if (!fuse_ || !rope || rope->pipeline != &rope_p) return false;
    const HeldRope h = held_rope_;
    const VulkanBuffer& kv = vk(k);
    // V is read in the dispatch that rotates K (and q): it must be neither.
    if (rope->refs[0].handle != kv.handle() || rope->refs[0].serial != kv.serial() ||
        vk(v).handle() == kv.handle() || rope->refs[0].offset != 0 || h.n != n || h.heads != s.n_kv_heads ||
        int(h.pairs) * 2 != s.head_dim || h.pos0 != pos0 || cache.type != KvType::kF16)
      return false;
    // rope() holds a RoPE before this one only when it is q's: same tokens, positions, pairs and table.
    const Command* q = rec_.held_before();
    const bool with_q = q && q->pipeline == &rope_p && vk(v).handle() != q->refs[0].handle;
    const uint32_t q_heads = with_q ? uint32_t(held_q_.heads) : 0u;
    const size_t row = size_t(s.n_kv_heads) * s.head_dim, count = size_t(n) * row;
    const auto [kb, kc] = cache_rows(*cache.k, n, pos0, row, cache.capacity);
    const auto [vb, vc] = cache_rows(*cache.v, n, pos0, row, cache.capacity);
    const Pipeline& p = pipelines_.get("rope_kv_store", {kWorkgroup}, 7);
    const uint32_t pc[] = {uint32_t(n), q_heads, uint32_t(h.heads), h.pairs,  h.table[0],
                           h.table[1],  kc.base, vc.base,           kc.origin};
    const size_t total = size_t(n) * h.pairs * (q_heads + 2u * uint32_t(h.heads));
    const auto [gx, gz] = split(uint32_t(std::min<size_t>((total + kWorkgroup - 1) / kWorkgroup, 16384)));
    // q, K, the table and the position register as the RoPEs had them (binding 0 aliases K without q);
    // V and the caches after.
    Command c = rec_.make_dispatch(p,
                                   {window(k, 0, count * 4, true), window(k, 0, count * 4, true),
                                    window(v, 0, count * 4, false), position(), position(), kb, vb},
                                   pc, sizeof(pc), gx, 1, gz);
    c.refs[0] = with_q ? q->refs[0] : rope->refs[0];
    c.refs[1] = rope->refs[0];
    c.refs[3] = rope->refs[1];
    c.refs[4] = rope->refs[2];
    rec_.drop_held();
    rec_.record(c);
    return true;
  }

  // Whether the first held command is the fused q/k/v matvec (held_mv_, three targets).
  bool held_qkv_first() const {
    const Command* c = rec_.held_first();
    return c && c->pipeline == held_mv_.pipeline && held_mv_.count == 3;
  }

  // Whether ref is buffer b bound from its start.
  static bool starts(const Command::Ref& ref, const DeviceBuffer& b) {
    const VulkanBuffer& vb = vk(b);
    return ref.handle == vb.handle() && ref.serial == vb.serial() && ref.offset == 0;
  }

  // Whether the held commands are the fused q/k/v matvec with its K output in buffer k, the RoPE of its q and
  // the RoPE of its K (rope()), for one token, with shapes that pair up (held_rope_ has K's heads and pairs).
  bool held_qkv_rope(const DeviceBuffer& k) const {
    const HeldMatvec& hm = held_mv_;
    const HeldRope h = held_rope_;
    return rec_.held_count() == 3 && held_qkv_first() && h.n == 1 && held_q_.pairs == h.pairs &&
           int64_t(held_q_.heads) * 2 * h.pairs == hm.rows[0] && hm.rows[1] == int64_t(h.heads) * 2 * h.pairs &&
           hm.rows[2] == hm.rows[1] && hm.rows[0] % 2 == 0 && matvec_rows(hm.type) % 2 == 0 &&
           starts(hm.out[1], k);
  }

  // The held q/k/v matvec and the RoPEs of q and K as one dispatch of matvec_fused.comp with ROPE_STORE 2
  // (rotate, no store) when the next command reads K otherwise than a cache store (a split KV cache's
  // attention reads K and V, then appends them itself): two dispatches and a barrier fewer per layer.
  void fold_rope_only(const DeviceBuffer& k) {
    if (!fuse_ || !held_qkv_rope(k)) return;
    // Bindings 9-10 (the caches of mode 1) are not touched: K's and V's outputs stand in.
    record_qkv_rope(2, window(k, 0, size_t(held_mv_.rows[1]) * 4, false), {0, 0, 0}, held_mv_.out[1],
                    held_mv_.out[2]);
  }

  // Records the held q/k/v matvec and RoPEs (held_qkv_rope) as one dispatch of matvec_fused.comp in
  // ROPE_STORE mode `mode`: `cache` is its push constants k_base, v_base and cache_origin, k_cache and
  // v_cache its bindings 9 and 10; the RoPE table and the position register are bound as the RoPE had them.
  void record_qkv_rope(uint32_t mode, const Binding& live, const std::array<uint32_t, 3>& cache,
                       const Command::Ref& k_cache, const Command::Ref& v_cache) {
    const HeldRope h = held_rope_;
    const Command rope_k = *rec_.held();
    Command c = fused_matvec_command(false, live, mode);
    const uint32_t extra[] = {h.pairs, h.table[0], h.table[1], cache[0], cache[1], cache[2]};
    std::memcpy(c.push + 6 * 4, extra, sizeof(extra));
    c.push_bytes = std::max<uint32_t>(c.push_bytes, 12 * 4);
    c.refs[7] = rope_k.refs[1];
    c.refs[8] = rope_k.refs[2];
    c.refs[9] = k_cache;
    c.refs[10] = v_cache;
    rec_.drop_held();
    rec_.record(c);
  }

  // The held q/k/v matvec, RoPE of q and RoPE of K (rope()), and this store of K and V into an f16 cache, as
  // one dispatch of matvec_fused.comp with ROPE_STORE: true when recorded.
  bool fold_rope_store(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
                       KvLayer& cache) {
    const HeldRope h = held_rope_;
    if (cache.type != KvType::kF16 || n != 1 || h.pos0 != pos0 || h.heads != s.n_kv_heads ||
        int(h.pairs) * 2 != s.head_dim || !held_qkv_rope(k) || !starts(held_mv_.out[2], v))
      return false;
    const size_t row = size_t(s.n_kv_heads) * s.head_dim;
    const auto [kb, kc] = cache_rows(*cache.k, n, pos0, row, cache.capacity);
    const auto [vb, vc] = cache_rows(*cache.v, n, pos0, row, cache.capacity);
    record_qkv_rope(1, window(v, 0, row * 4, false), {kc.base, vc.base, kc.origin}, ref_of(kb), ref_of(vb));
    return true;
  }

  // The same bytes of the same buffer, read or written.
  static bool same_range(const Command::Ref& a, const Command::Ref& b) {
    return a.handle == b.handle && a.serial == b.serial && a.offset == b.offset && a.range == b.range;
  }
  static bool same_ref(const Command::Ref& a, const Command::Ref& b) {
    return a.handle == b.handle && a.serial == b.serial && a.offset == b.offset && a.range == b.range &&
           a.write == b.write;
  }

  // rms_norm.comp / add_rms_norm.comp (common/rms_norm.glsl): one workgroup per row, each invocation holding
  // R slots (vec4, or floats for odd dims) of the row in registers. A GPU gets the smallest power-of-two
  // workgroup from 64 up to 1024 (and the device's limits) that covers the row in one slot per invocation
  // (4096 floats: 1024 invocations, one 16-byte load each), so a decode call waits on one round of loads
  // and one reduction. CPU devices (lavapipe) keep 128 invocations, several slots each: their cost is per
  // invocation and per barrier, not memory latency.
  const Pipeline& norm_pipeline(bool add, int dim) {
    const uint32_t slots = (uint32_t(dim) + 3) / 4;
    uint32_t wg = kWorkgroup;
    if (!cpu_device_) {
      const auto& lim = ctx_->properties().limits;
      const uint32_t max_wg =
          std::min({1024u, lim.maxComputeWorkGroupInvocations, lim.maxComputeWorkGroupSize[0]});
      wg = 64;
      while (wg < slots && wg * 2 <= max_wg) wg *= 2;
    }
    const uint32_t r = std::clamp<uint32_t>((slots + wg - 1) / wg, 1, 8);
    std::string name = add ? "add_rms_norm" : "rms_norm";
    if (ctx_->subgroup_arithmetic()) name += "_subgroup";
    return pipelines_.get(name, {wg, wg, r}, add ? 5 : 3);
  }

  // The RMSNorm of a held add's sum, fused with it: true when recorded.
  bool fuse_with_held_add(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim,
                          const uint32_t (&pc)[2], DeviceBuffer& out) {
    const Command* add = rec_.held();
    if (!add || add->pipeline != &pipelines_.get("elementwise", {kWorkgroup, 0u}, 3)) return false;
    if (rec_.held_before()) {  // a matvec's product held with the add (elementwise())
      if (fold_norm(x, w, n, dim, pc, out)) return true;
      rec_.record_first_held();
    }
    const VulkanBuffer &xv = vk(x), &ov = vk(out);
    const Command::Ref a = add->refs[0], b = add->refs[1], sum = add->refs[2];
    const bool sum_is_x = sum.handle == xv.handle() && sum.serial == xv.serial() && sum.offset == 0 &&
                          held_add_count_ == int64_t(n) * dim;
    // The norm's output may be an operand of the add (the engine normalises x = x + xb into xb): every
    // element is read in the first pass by the invocation that writes it in the second. Not the sum.
    if (!sum_is_x || ov.handle() == sum.handle) return false;
    const Pipeline& p = norm_pipeline(true, dim);
    const size_t bytes = size_t(n) * dim * 4;
    // Bindings 0-2 as the add had them; the norm's weight and output after.
    Command c =
        rec_.make_dispatch(p,
                           {window(x, 0, bytes, false), window(x, 0, bytes, false), window(x, 0, bytes, true),
                            window(w, 0, size_t(dim) * 4, false), window(out, 0, bytes, true)},
                           pc, sizeof(pc), uint32_t(n), 1, 1);
    c.refs[0] = a;
    c.refs[1] = b;
    c.refs[2] = sum;
    rec_.drop_held();
    rec_.record(c);
    return true;
  }

  // The norm fold: a decode matvec's product (o, down; held), the residual add of it (held with it) and the
  // RMSNorm of the sum, as one dispatch of matvec_add_norm.comp and a scale applied by the readers. The
  // dispatch writes the sum and h * norm weight and adds the squares of the sum into an accumulator slot;
  // the fused matvecs that read the norm's output multiply their products by the scale the slot gives
  // (fused_matvec_command), and any other reader gets norm_scale.comp first (CommandRecorder::set_pending).
  // One dispatch and one barrier fewer than the matvec and add_rms_norm.comp: their ramp and tail, ~5 us a
  // norm on an H100. Needs 64-bit buffer atomics; FKV_VULKAN_NORM_FOLD=0 turns it off. True when recorded.
  bool fold_norm(const DeviceBuffer& x, const DeviceBuffer& w, int n, int dim, const uint32_t (&pc)[2],
                 DeviceBuffer& out) {
    const HeldMatvec h = held_mv_;
    const Command mv = *rec_.held_before();
    const Command::Ref add_a = rec_.held()->refs[0];
    const size_t bytes = size_t(dim) * 4;
    const Binding xb = window(x, 0, bytes, true), ob = window(out, 0, bytes, true);
    // The sum is x (the add's first operand and output) and the norm writes over the product, in another
    // buffer (the fold reads x's old values after the product).
    if (!norm_fold_on() || n != 1 || h.count != 1 || h.rows[0] != dim || mv.pipeline != h.pipeline ||
        !same_range(add_a, ref_of(window(x, 0, bytes, false))) || !same_range(h.out[0], ref_of(ob)) ||
        vk(x).handle() == vk(out).handle())
      return false;
    const std::string name = ctx_->subgroup_arithmetic() ? "matvec_add_norm_subgroup" : "matvec_add_norm";
    const Pipeline& p = pipelines_.get(
        name, {matvec_wg(), h.wtype, matvec_wg(), matvec_rows(h.type), matvec_unroll(h.type)}, 6);
    if (norm_slot_ == kNormSlots) {  // more folds than slots since the step began: start over
      rec_.resolve_pending();
      norm_slot_ = 0;
    }
    const uint32_t slot = norm_slot_++;
    rec_.drop_held();  // recorded below as one dispatch
    const VulkanBuffer& sums = norm_sums();
    const Binding sb = window(sums, 0, kNormSumBytes, true);
    uint32_t push[8];
    std::memcpy(push, mv.push, 7 * 4);
    push[7] = slot;
    Command c = rec_.make_dispatch(p, {ob, ob, ob, xb, window(w, 0, bytes, false), sb}, push, sizeof(push),
                                   mv.groups[0], mv.groups[1], mv.groups[2]);
    c.refs[0] = h.w[0];
    c.refs[1] = h.x;
    if (slot == 0) rec_.copy(*norm_zeros_, 0, sums, 0, kNormSumBytes);
    rec_.record(c);
    // The fix-up for other readers: x *= scale in place.
    const Pipeline& fp = pipelines_.get("norm_scale", {kWorkgroup}, 2);
    const uint32_t fpc[] = {uint32_t(dim), slot, pc[1]};
    const Command fix =
        rec_.make_dispatch(fp, {ob, window(sums, 0, kNormSumBytes, false)}, fpc, sizeof(fpc),
                           uint32_t(std::min<int64_t>((dim + kWorkgroup - 1) / kWorkgroup, 64)), 1, 1);
    rec_.set_pending(ref_of(ob), bytes, fix);
    pending_norm_ = PendingNorm{slot, std::bit_cast<float>(pc[1])};
    return true;
  }

  // The norm fold's accumulator slots, and as many zeros to clear them with at a step's first fold.
  const VulkanBuffer& norm_sums() {
    if (!norm_sums_) {
      norm_sums_ = std::make_shared<VulkanBuffer>(ctx_, kNormSumBytes, MemoryKind::kDevice, "norm fold sums");
      norm_zeros_ =
          std::make_shared<VulkanBuffer>(ctx_, kNormSumBytes, MemoryKind::kDevice, "norm fold zeros");
      const std::vector<uint8_t> zeros(kNormSumBytes, 0);
      rec_.upload(*norm_zeros_, 0, zeros.data(), kNormSumBytes);
      rec_.upload(*norm_sums_, 0, zeros.data(), kNormSumBytes);
    }
    return *norm_sums_;
  }

  // cos/sin of every (position, pair) angle from position 0 on, computed like the CPU reference so that
  // every backend rotates by the same values. Rows are appended ahead of need (kRopeRowsAhead at a time) and
  // the buffer doubles when full, so that a decode step rarely uploads rows (an upload inside a step keeps
  // that step from being replayed) and the buffer rarely changes (a new buffer is a new step to record).
  const VulkanBuffer& rope_table(int positions, const RopeParams& p) {
    const std::vector<float> key = [&] {
      std::vector<float> k = {
          float(p.head_dim),        p.theta, float(p.llama3), p.factor, p.low_freq_factor, p.high_freq_factor,
          float(p.original_context)};
      k.insert(k.end(), p.freq_factors.begin(), p.freq_factors.end());
      return k;
    }();
    if (key != rope_key_) rope_rows_ = 0;
    rope_key_ = key;
    const int pairs = p.head_dim / 2;
    const size_t row = size_t(pairs) * 8;
    if (rope_table_ && positions <= rope_rows_) return *rope_table_;
    const int target = (positions + kRopeRowsAhead - 1) / kRopeRowsAhead * kRopeRowsAhead;
    if (!rope_table_ || rope_table_->size() < size_t(target) * row) {
      size_t rows = size_t(target);
      if (rope_table_) rows = std::max(rows, 2 * rope_table_->size() / row);
      auto bigger = std::make_shared<VulkanBuffer>(ctx_, rows * row, MemoryKind::kDevice, "RoPE table");
      if (rope_rows_ > 0) rec_.copy(*rope_table_, 0, *bigger, 0, size_t(rope_rows_) * row);
      rope_table_ = std::move(bigger);
    }
    std::vector<float> freq(static_cast<size_t>(pairs)), cs(size_t(target - rope_rows_) * pairs * 2);
    for (int k = 0; k < pairs; ++k) freq[k] = rope_frequency(p, k);
    for (int i = rope_rows_; i < target; ++i)
      for (int k = 0; k < pairs; ++k) {
        const float angle = float(i) * freq[k];
        cs[(size_t(i - rope_rows_) * pairs + k) * 2] = std::cos(angle);
        cs[(size_t(i - rope_rows_) * pairs + k) * 2 + 1] = std::sin(angle);
      }
    rec_.upload(*rope_table_, size_t(rope_rows_) * row, cs.data(), cs.size() * 4);
    rope_rows_ = target;
    return *rope_table_;
  }

  std::shared_ptr<VulkanContext> ctx_;
  PipelineCache pipelines_;
  CommandRecorder rec_;
  VulkanSplitKv split_kv_;
  Buffer rope_table_, partials_, arrivals_;
  std::vector<float> rope_key_;
  int rope_rows_ = 0;           // rows of rope_table_ filled for rope_key_
  int64_t held_add_count_ = 0;  // values of the add CommandRecorder holds
  // The norm fold (fold_norm): its accumulators, the next slot of the step, the pending norm's slot and eps.
  std::shared_ptr<VulkanBuffer> norm_sums_, norm_zeros_;
  uint32_t norm_slot_ = 0;
  struct PendingNorm {
    uint32_t slot = 0;
    float eps = 0;
  } pending_norm_;
  // FKV_VULKAN_NORM_FOLD=0 keeps the decode matvec, the residual add and the RMSNorm apart (for timing).
  bool norm_fold_ = env_switch("FKV_VULKAN_NORM_FOLD", true);
  struct HeldRope {
    int n = 0, heads = 0;
    uint32_t pairs = 0;
    int pos0 = 0;
    uint32_t table[2] = {0, 0};  // push constants table_base, origin
  } held_rope_,                  // the RoPE CommandRecorder holds (held())
      held_q_;                   // the RoPE of q held before it (held_before())
  // The matvecs in the command CommandRecorder holds (held_matvecs()): their x, weights, outputs.
  struct HeldMatvec {
    const Pipeline* pipeline = nullptr;  // the held command's: matvec or matvec_fused
    GgmlType type = GgmlType::F32;
    uint32_t wtype = 0;
    int64_t cols = 0;
    int count = 0;
    Command::Ref x, w[3], out[3];
    int64_t rows[3] = {0, 0, 0};
  } held_mv_;
  // FKV_VULKAN_FUSE=0 runs every op as its own dispatches (no add + RMSNorm, no RoPE + K store, no
  // matvecs of one x together, no SwiGLU folded into gate and up).
  bool fuse_ = env_switch("FKV_VULKAN_FUSE", true);
  const bool argmax_on_ = env_switch("FKV_VULKAN_ARGMAX", true);
  BufferPtr argmax_out_;  // argmax.comp's (index, found)
  // FKV_VULKAN_FUSE_SWIGLU=0 keeps the SwiGLU apart from the fused gate and up (for timing the fold).
  bool fold_swiglu_ = env_switch("FKV_VULKAN_FUSE_SWIGLU", true);
  // FKV_VULKAN_ROPE_FOLD=0 keeps the RoPE of q and K and the store of K and V a dispatch of their own
  // (rope_kv_store.comp) after the fused q/k/v matvec while fusing (for timing).
  bool rope_fold_ = env_switch("FKV_VULKAN_ROPE_FOLD", true);
  // FKV_VULKAN_MERGE_LAST=0 keeps the attention merge a dispatch of its own while fusing (for timing).
  bool merge_last_ = env_switch("FKV_VULKAN_MERGE_LAST", true);
  // CPU implementations (lavapipe) run one row per invocation: their barriers cost more than GPUs'.
  // FKV_VULKAN_GPU_KERNELS=1 makes them run the GPU configuration (tests use it).
  bool cpu_device_ = false;
  // FKV_VULKAN_MATVEC=0 sends GPU decode to matmul.comp instead of matvec.comp (for timing the two).
  bool matvec_ = env_switch("FKV_VULKAN_MATVEC", true);
  // FKV_VULKAN_REPACK=0 keeps Q4_0 weights in the GGUF layout (for timing the two in one binary).
  bool repack_ = env_switch("FKV_VULKAN_REPACK", true);
  // Chunk workgroups per attention step (vulkan_attention_plan.h); FKV_VULKAN_ATTN_GROUPS=N overrides it
  // for tuning on a new GPU.
  uint32_t default_attn_target() const {
    return env_count("FKV_VULKAN_ATTN_GROUPS", cpu_device_ ? kAttnCpuTarget : kAttnGpuTarget);
  }
  uint32_t attn_target_ = default_attn_target();
};

}  // namespace

std::unique_ptr<Backend> create_vulkan_backend(int device) {
  return std::make_unique<VulkanBackend>(device);
}

VulkanReplayInfo vulkan_replay_info(const Backend& backend) {
  const auto* b = dynamic_cast<const VulkanBackend*>(&backend);
  if (!b) return {};
  const ReplayStats& s = b->replay_stats();
  return VulkanReplayInfo{s.replays, s.commands, s.dispatches, s.barriers, s.segments};
}

void vulkan_set_attention_target(Backend& backend, uint32_t target) {
  if (auto* b = dynamic_cast<VulkanBackend*>(&backend)) b->set_attention_target(target);
}

bool vulkan_norm_fold(const Backend& backend) {
  const auto* b = dynamic_cast<const VulkanBackend*>(&backend);
  return b && b->norm_fold_on();
}

void vulkan_set_fusion(Backend& backend, bool on) {
  if (auto* b = dynamic_cast<VulkanBackend*>(&backend)) b->set_fusion(on);
}

void vulkan_set_replay(Backend& backend, bool on) {
  if (auto* b = dynamic_cast<VulkanBackend*>(&backend)) b->set_replay(on);
}

bool vulkan_set_profile(Backend& backend, bool on, VulkanProfileMode mode) {
  auto* b = dynamic_cast<VulkanBackend*>(&backend);
  return b && b->recorder().set_profiling(on, mode);
}

VulkanProfile vulkan_profile(Backend& backend) {
  auto* b = dynamic_cast<VulkanBackend*>(&backend);
  return b ? b->recorder().profile() : VulkanProfile{};
}

void vulkan_print_profile(Backend& backend) {
  if (auto* b = dynamic_cast<VulkanBackend*>(&backend)) b->recorder().print_profile();
}

void vulkan_drop_scratch(Backend& backend) {
  if (auto* b = dynamic_cast<VulkanBackend*>(&backend)) b->drop_scratch();
}

}  // namespace fkv
