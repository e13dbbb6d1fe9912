#include "model/llama2c_convert.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "util/error.h"

namespace fkv {

namespace {

constexpr int32_t kMaxDim = 1 << 16;  // far beyond any llama2.c model; keeps size arithmetic in range
constexpr int32_t kMaxLayers = 1 << 10;
constexpr int32_t kMaxVocab = 1 << 22;

Llama2cConfig read_config(const std::string& path, const uint8_t* p) {
  int32_t h[7];
  std::memcpy(h, p, sizeof(h));
  uint32_t magic;
  std::memcpy(&magic, p, 4);
  require(
      magic != 0x616b3432, ErrorCode::kUnsupported,
      path +
          ": a llama2.c export of version 1 or later (magic 'ak42'); only the version 0 format is supported");
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
  c.seq_len = h[6];
  auto check = [&](bool ok, const std::string& what) {
    require(ok, ErrorCode::kBadFile,
            path + ": not a llama2.c checkpoint (" + what + "; header dim=" + std::to_string(h[0]) +
                " hidden_dim=" + std::to_string(h[1]) + " n_layers=" + std::to_string(h[2]) +
                " n_heads=" + std::to_string(h[3]) + " n_kv_heads=" + std::to_string(h[4]) +
                " vocab_size=" + std::to_string(h[5]) + " seq_len=" + std::to_string(h[6]) + ")");
  };
  check(c.dim > 0 && c.dim <= kMaxDim, "dim out of range");
  check(c.hidden_dim > 0 && c.hidden_dim <= 8 * kMaxDim, "hidden_dim out of range");
  check(c.n_layers > 0 && c.n_layers <= kMaxLayers, "n_layers out of range");
  check(c.n_heads > 0 && c.dim % c.n_heads == 0, "dim is not a multiple of n_heads");
  check((c.dim / c.n_heads) % 2 == 0, "head size is odd, RoPE needs pairs");
  check(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, "n_heads is not a multiple of n_kv_heads");
  check(c.vocab_size > 0 && c.vocab_size <= kMaxVocab, "vocab_size out of range");
  check(c.seq_len > 0 && c.seq_len <= (1 << 24), "seq_len out of range");
  return c;
}

}  // namespace

GgufWriter llama2c_to_gguf(const std::string& in_path, Llama2cConfig* config_out) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(in_path, ec);
  require(!ec, ErrorCode::kIo, "cannot read " + in_path + ": " + ec.message());
  require(size >= 28, ErrorCode::kBadFile,
          in_path + ": too short for a llama2.c header (" + std::to_string(size) + " bytes)");
  // The whole checkpoint is held in memory; the writer's tensors point into it (shared ownership).
  auto buf = std::make_shared<std::vector<uint8_t>>(size);
  std::ifstream in(in_path, std::ios::binary);
  require(in.read(reinterpret_cast<char*>(buf->data()), static_cast<std::streamsize>(size)).good(),
          ErrorCode::kIo, "cannot read " + in_path);
  const Llama2cConfig c = read_config(in_path, buf->data());

  const int64_t dim = c.dim, hidden = c.hidden_dim, L = c.n_layers, vocab = c.vocab_size;
  const int64_t head_size = dim / c.n_heads, kv_dim = head_size * c.n_kv_heads;
  // Values in file order; all products fit in int64 given the header limits.
  const int64_t expected = vocab * dim + L * dim + L * dim * dim + 2 * L * kv_dim * dim + L * dim * dim +
                           L * dim + 3 * L * hidden * dim + dim + int64_t(c.seq_len) * head_size +
                           (c.shared_classifier ? 0 : vocab * dim);
  require(size == 28 + 4 * uint64_t(expected), ErrorCode::kBadFile,
          in_path + ": file is " + std::to_string(size) + " bytes but its header (dim " +
              std::to_string(dim) + ", " + std::to_string(L) + " layers, vocab " + std::to_string(vocab) +
              ") implies " + std::to_string(28 + 4 * uint64_t(expected)));

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", std::filesystem::path(in_path).stem().string());
  w.set_u32("general.file_type", 0);  // all F32
  w.set_u32("llama.context_length", uint32_t(c.seq_len));
  w.set_u32("llama.embedding_length", uint32_t(dim));
  w.set_u32("llama.block_count", uint32_t(L));
  w.set_u32("llama.feed_forward_length", uint32_t(hidden));
  w.set_u32("llama.attention.head_count", uint32_t(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.set_u32("llama.rope.dimension_count", uint32_t(head_size));
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("llama.vocab_size", uint32_t(vocab));

  // Walks the file's arrays in order. A [rows, cols] row-major matrix becomes GGUF dims {cols, rows}.
  size_t pos = 28;
  auto take = [&](int64_t n) {
    const size_t at = pos;
    pos += size_t(n) * 4;
    return at;
  };
  auto add = [&](const std::string& name, std::vector<int64_t> dims, size_t at) {
    const size_t n = size_t(GgufWriter::tensor_bytes(dims, GgmlType::F32));
    w.add_tensor(name, std::move(dims), GgmlType::F32,
                 [buf, at, n](uint8_t* dst) { std::memcpy(dst, buf->data() + at, n); });
  };
  auto blk = [](int64_t l, const char* what) { return "blk." + std::to_string(l) + "." + what + ".weight"; };
  add("token_embd.weight", {dim, vocab}, take(vocab * dim));
  // Per-layer arrays are stacked [L, ...]: layer l's slice starts l slices in.
  const size_t rms_att = take(L * dim), wq = take(L * dim * dim), wk = take(L * kv_dim * dim),
               wv = take(L * kv_dim * dim), wo = take(L * dim * dim), rms_ffn = take(L * dim),
               w1 = take(L * hidden * dim), w2 = take(L * dim * hidden), w3 = take(L * hidden * dim);
  for (int64_t l = 0; l < L; ++l) {
    add(blk(l, "attn_norm"), {dim}, rms_att + size_t(l * dim) * 4);
    add(blk(l, "attn_q"), {dim, dim}, wq + size_t(l * dim * dim) * 4);
    add(blk(l, "attn_k"), {dim, kv_dim}, wk + size_t(l * kv_dim * dim) * 4);
    add(blk(l, "attn_v"), {dim, kv_dim}, wv + size_t(l * kv_dim * dim) * 4);
    add(blk(l, "attn_output"), {dim, dim}, wo + size_t(l * dim * dim) * 4);
    add(blk(l, "ffn_norm"), {dim}, rms_ffn + size_t(l * dim) * 4);
    add(blk(l, "ffn_gate"), {dim, hidden}, w1 + size_t(l * hidden * dim) * 4);
    add(blk(l, "ffn_down"), {hidden, dim}, w2 + size_t(l * dim * hidden) * 4);
    add(blk(l, "ffn_up"), {dim, hidden}, w3 + size_t(l * hidden * dim) * 4);
  }
  add("output_norm.weight", {dim}, take(dim));
  take(int64_t(c.seq_len) * head_size);  // the RoPE tables: runtimes compute their own
  if (!c.shared_classifier) add("output.weight", {dim, vocab}, take(vocab * dim));
  if (config_out) *config_out = c;
  return w;
}

Llama2cConfig convert_llama2c(const std::string& in_path, const std::string& out_path) {
  Llama2cConfig c;
  llama2c_to_gguf(in_path, &c).write(out_path);
  return c;
}

}  // namespace fkv
