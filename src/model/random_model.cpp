#include "model/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "gguf/gguf_writer.h"
#include "model/quant.h"
#include "util/error.h"

namespace fkv {

namespace {

const RandomModelShape kShapes[] = {
    {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 131072, 500000.0f, false, 8.0f},
    {"llama3-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, true, 32.0f},
    {"small", 256, 2, 4, 2, 512, 512, 2048, 10000.0f, false, 0.0f},
    {"tiny", 64, 2, 4, 2, 128, 256, 512, 10000.0f, false, 0.0f},
};

// llama.cpp's general.file_type numbering (llama_ftype), for tools that display it.
uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q4_K:
      return 14;  // Q4_K_S: every matrix q4_k
    case GgmlType::Q6_K:
      return 18;
    case GgmlType::BF16:
      return 32;
  }
  return 0;
}

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// mean + stddev * (a near-normal value): the sum of four 16-bit uniforms from one 64-bit draw (Irwin-Hall),
// cheap enough to fill 8 billion weights in seconds.
void fill_row(float* x, int64_t n, uint64_t seed, float mean, float stddev) {
  constexpr float kSumStd = 37837.2f;  // 65536 * sqrt(4/12)
  const float scale = stddev / kSumStd;
  uint64_t s = seed;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const uint64_t r = s * 0x2545f4914f6cdd1dull;
    const float sum = float((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    x[i] = mean + (sum - 131070.0f) * scale;
  }
}

struct TensorPlan {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType type;
  float mean, stddev;
  std::vector<float> values;  // fixed contents (rope_freqs) instead of random
};

std::vector<TensorPlan> plan(const RandomModelShape& s, GgmlType type) {
  const int64_t head_dim = s.dim / s.n_heads, kv_dim = head_dim * s.n_kv_heads;
  std::vector<TensorPlan> t;
  auto matrix = [&](const std::string& name, int64_t in, int64_t out) {
    t.push_back({name, {in, out}, random_model_tensor_type(type, in), 0.0f, 0.02f, {}});
  };
  auto norm = [&](const std::string& name) { t.push_back({name, {s.dim}, GgmlType::F32, 1.0f, 0.02f, {}}); };
  matrix("token_embd.weight", s.dim, s.vocab);
  if (s.rope_scaling > 0) {
    TensorPlan f{"rope_freqs.weight", {head_dim / 2}, GgmlType::F32, 0, 0, {}};
    f.values = llama3_rope_freq_factors(head_dim, s.rope_theta, s.rope_scaling, 1.0f, 4.0f, 8192);
    t.push_back(std::move(f));
  }
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    norm(b + "attn_norm.weight");
    matrix(b + "attn_q.weight", s.dim, s.dim);
    matrix(b + "attn_k.weight", s.dim, kv_dim);
    matrix(b + "attn_v.weight", s.dim, kv_dim);
    matrix(b + "attn_output.weight", s.dim, s.dim);
    norm(b + "ffn_norm.weight");
    matrix(b + "ffn_gate.weight", s.dim, s.ffn);
    matrix(b + "ffn_up.weight", s.dim, s.ffn);
    matrix(b + "ffn_down.weight", s.ffn, s.dim);
  }
  norm("output_norm.weight");
  if (!s.tied_output) matrix("output.weight", s.dim, s.vocab);
  return t;
}

// Fills dst with the encoded tensor, rows split over threads. Each row's values depend only on
// (seed, tensor index, row), so the file is the same for any thread count.
void fill_tensor(const TensorPlan& p, uint64_t seed, int threads, uint8_t* dst) {
  if (!p.values.empty()) {
    std::memcpy(dst, p.values.data(), p.values.size() * 4);
    return;
  }
  const int64_t row_len = p.dims[0];
  int64_t rows = 1;
  for (size_t i = 1; i < p.dims.size(); ++i) rows *= p.dims[i];
  const size_t rb = row_bytes(p.type, row_len);
  const int n_threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, rows)));
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(row_len));
    for (int64_t r = r0; r < r1; ++r) {
      fill_row(row.data(), row_len, splitmix64(seed ^ splitmix64(uint64_t(r))) | 1, p.mean, p.stddev);
      quantize_row(p.type, row.data(), dst + size_t(r) * rb, row_len);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i)
    pool.emplace_back(work, rows * i / n_threads, rows * (i + 1) / n_threads);
  work(0, rows / n_threads);
  for (std::thread& th : pool) th.join();
}

}  // namespace

const RandomModelShape* find_random_model_shape(const std::string& name) {
  for (const RandomModelShape& s : kShapes)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> random_model_shape_names() {
  std::vector<std::string> names;
  for (const RandomModelShape& s : kShapes) names.push_back(s.name);
  return names;
}

GgmlType random_model_tensor_type(GgmlType wanted, int64_t row_len) {
  if (row_len % type_traits(wanted).block_elems == 0) return wanted;
  return row_len % 32 == 0 ? GgmlType::Q8_0 : GgmlType::F16;
}

std::vector<float> llama3_rope_freq_factors(int64_t head_dim, float theta, float factor,
                                            float low_freq_factor, float high_freq_factor,
                                            int64_t original_context) {
  const double low_wavelen = double(original_context) / low_freq_factor;
  const double high_wavelen = double(original_context) / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < head_dim; i += 2) {
    const double freq = std::pow(double(theta), -double(i) / double(head_dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const double smooth =
          (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      out.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

void make_random_model(const RandomModelOptions& o, const std::string& out_path) {
  const RandomModelShape* s = find_random_model_shape(o.shape);
  require(s != nullptr, ErrorCode::kInvalidArgument, "unknown model shape '" + o.shape + "'");
  type_traits(o.type);  // throws for an unsupported type
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "random " + s->name);
  w.set_u32("general.file_type", file_type(o.type));
  if (type_traits(o.type).block_elems > 1) w.set_u32("general.quantization_version", 2);
  w.set_u32("llama.context_length", uint32_t(s->context));
  w.set_u32("llama.embedding_length", uint32_t(s->dim));
  w.set_u32("llama.block_count", uint32_t(s->n_layers));
  w.set_u32("llama.feed_forward_length", uint32_t(s->ffn));
  w.set_u32("llama.attention.head_count", uint32_t(s->n_heads));
  w.set_u32("llama.attention.head_count_kv", uint32_t(s->n_kv_heads));
  w.set_u32("llama.rope.dimension_count", uint32_t(s->dim / s->n_heads));
  w.set_f32("llama.rope.freq_base", s->rope_theta);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("llama.vocab_size", uint32_t(s->vocab));
  if (s->rope_scaling > 0) {
    if (o.llama3_scaling_keys) {
      w.set_string("llama.rope.scaling.type", "llama3");
      w.set_f32("llama.rope.scaling.factor", s->rope_scaling);
    }
    w.set_f32("llama.rope.scaling.low_freq_factor", 1.0f);
    w.set_f32("llama.rope.scaling.high_freq_factor", 4.0f);
    w.set_u32("llama.rope.scaling.original_context_length", 8192);
  }

  const std::vector<TensorPlan> tensors = plan(*s, o.type);
  uint64_t total = 0;
  for (const TensorPlan& p : tensors) total += GgufWriter::tensor_bytes(p.dims, p.type);
  auto done = std::make_shared<uint64_t>(0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorPlan& p = tensors[i];
    const uint64_t tensor_seed = splitmix64(o.seed * 0x100000001b3ull + i);
    const uint64_t n = GgufWriter::tensor_bytes(p.dims, p.type);
    w.add_tensor(p.name, p.dims, p.type,
                 [&p, tensor_seed, threads, n, i, total, done, &o, count = tensors.size()](uint8_t* dst) {
                   fill_tensor(p, tensor_seed, threads, dst);
                   // Progress in 2% steps: one short line's worth of updates, whether on a terminal or in a
                   // log.
                   const int before = int(50 * *done / total);
                   *done += n;
                   if (o.progress && int(50 * *done / total) != before)
                     std::fprintf(stderr, "\r[%zu/%zu] %3d%% %-28s", i + 1, count, int(100 * *done / total),
                                  p.name.c_str());
                 });
  }
  if (o.progress)
    std::fprintf(stderr, "writing %s: %s %s, %zu tensors, %.2f GiB\n", out_path.c_str(), s->name.c_str(),
                 type_name(uint32_t(o.type)).c_str(), tensors.size(), double(total) / (1 << 30));
  w.write(out_path);
  if (o.progress) std::fprintf(stderr, "\ndone\n");
}

}  // namespace fkv
