// Decode matvecs of one input as one dispatch (matvec_fused.comp): the q, k and v projections, and gate
// and up with the SwiGLU after them folded in, give what the separate dispatches give (FKV_VULKAN_FUSE=0)
// and what the CPU gives, for every weight type and layout the decode matvec takes, odd row counts and row
// lengths, poisoned outputs; the dispatches are counted by the GPU profile, so a fusion that silently stops
// happening fails. Cases that must not fuse (other types, another x, one output twice, a SwiGLU elsewhere)
// fall back to separate dispatches with the same results. Whole decode steps of a random model (eager and
// replayed) match unfused and CPU logits.
#include <cstring>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "random_model_file.h"
#include "vulkan_test_util.h"

namespace fkv::test {
namespace {

// The decode matvec's configuration, fused and not: on lavapipe (which otherwise runs matmul.comp, one row
// per invocation) the GPU kernels with and without subgroupAdd; on a GPU the shared backend and the
// shared-memory reduction.
struct BackendPair {
  std::string label;
  Backend* fused;
  Backend* plain;
};
std::vector<BackendPair> matvec_backends(Backend* shared) {
  std::vector<BackendPair> out;
  for (const char* subgroup : {"1", "0"}) {
    std::vector<std::string> vars = {std::string("FKV_VULKAN_SUBGROUP=") + subgroup};
    if (is_lavapipe(*shared)) vars.push_back("FKV_VULKAN_GPU_KERNELS=1");
    std::vector<std::string> off = vars;
    off.push_back("FKV_VULKAN_FUSE=0");
    Backend* fused = !is_lavapipe(*shared) && subgroup[0] == '1' ? shared : &EnvBackends::get(vars);
    out.push_back({std::string("subgroup ") + subgroup, fused, &EnvBackends::get(off)});
  }
  return out;
}

// Dispatches a backend records for what `ops` issues (the GPU profile counts them), and their shaders.
template <typename F>
VulkanProfile profiled(Backend& be, F&& ops) {
  EXPECT_TRUE(vulkan_set_profile(be, true));
  ops();
  const VulkanProfile p = vulkan_profile(be);
  vulkan_set_profile(be, false);
  return p;
}

bool ran_fused(const VulkanProfile& p) {
  for (const auto& s : p.shaders)
    if (s.name.rfind("matvec_fused", 0) == 0) return true;
  return false;
}

std::vector<float> read_back(Backend& be, const DeviceBuffer& b, size_t count) {
  std::vector<float> out(count);
  be.download(b, 0, out.data(), count * 4);
  return out;
}

// One weight type and layout. fuses: whether the decode matvec (and so the fusion) takes it.
struct Case {
  std::string name;
  GgmlType type;
  int64_t cols;
  bool upload_weight;  // as the model loader does (Q4_0 rows of a multiple of 256 repacked); else upload()
  bool fuses;
};
const Case kCases[] = {
    {"f16", GgmlType::F16, 4104, true, true},
    {"f16 cols % 8 != 0 (matmul.comp)", GgmlType::F16, 4100, true, false},
    {"q4_0x8", GgmlType::Q4_0, 4096, true, true},
    {"q4_0 gguf layout", GgmlType::Q4_0, 4096, false, true},
    {"q4_0 cols 4128 (not repacked)", GgmlType::Q4_0, 4128, true, true},
    {"q8_0", GgmlType::Q8_0, 4128, true, true},
    {"q4_k (matmul.comp)", GgmlType::Q4_K, 4096, true, false},
};

// A layer's projections on one backend: q, k, v (577, 33, 33 rows) of x, then gate and up (577 rows) of x
// and SwiGLU into gate's output, as the engine issues them. Outputs start as NaN.
struct Projections {
  std::vector<float> q, k, v, gate, up;
  VulkanProfile qkv, ffn;  // Vulkan only
};
constexpr int64_t kQRows = 577, kKvRows = 33, kFfnRows = 577;

Projections project(Backend& be, const Case& c, const std::vector<float>& x) {
  const int64_t rows[5] = {kQRows, kKvRows, kKvRows, kFfnRows, kFfnRows};
  BufferPtr wb[5], ob[5];
  Weight w[5];
  for (int i = 0; i < 5; ++i) {
    const auto bytes = random_weight(c.type, rows[i], c.cols, uint32_t(40 + i));
    wb[i] = be.alloc(bytes.size(), "weight");
    w[i] = Weight{wb[i].get(), c.type, rows[i], c.cols};
    if (c.upload_weight) {
      be.upload_weight(w[i], bytes.data(), bytes.size());
    } else {
      be.upload(*wb[i], 0, bytes.data(), bytes.size());
    }
    ob[i] = be.alloc(size_t(rows[i]) * 4, "out");
    const std::vector<uint8_t> nan(size_t(rows[i]) * 4, 0xFF);
    be.upload(*ob[i], 0, nan.data(), nan.size());
  }
  BufferPtr xb = be.alloc(x.size() * 4, "x");
  be.upload(*xb, 0, x.data(), x.size() * 4);
  const bool vulkan = be.name() == "vulkan";
  Projections r;
  auto qkv = [&] {
    for (int i = 0; i < 3; ++i) be.matmul(w[i], *xb, 1, *ob[i]);
  };
  auto ffn = [&] {
    be.matmul(w[3], *xb, 1, *ob[3]);
    be.matmul(w[4], *xb, 1, *ob[4]);
    be.swiglu(*ob[3], *ob[4], kFfnRows, *ob[3]);
  };
  if (vulkan) {
    r.qkv = profiled(be, qkv);
    r.ffn = profiled(be, ffn);
  } else {
    qkv();
    ffn();
  }
  r.q = read_back(be, *ob[0], kQRows);
  r.k = read_back(be, *ob[1], kKvRows);
  r.v = read_back(be, *ob[2], kKvRows);
  r.gate = read_back(be, *ob[3], kFfnRows);
  r.up = read_back(be, *ob[4], kFfnRows);
  return r;
}

// max rel. error against the CPU < 1e-4 and against the unfused dispatches < 1e-5 (the same arithmetic
// per row: bit-identical unless the driver compiles the two shaders differently); printed for the log.
void expect_close(const std::vector<float>& fused, const std::vector<float>& plain,
                  const std::vector<float>& cpu, const std::string& what) {
  const double vs_plain = max_rel_error(fused, plain), vs_cpu = max_rel_error(fused, cpu);
  const bool identical =
      fused.size() == plain.size() && std::memcmp(fused.data(), plain.data(), fused.size() * 4) == 0;
  EXPECT_LT(vs_plain, 1e-5) << what;
  EXPECT_LT(vs_cpu, 1e-4) << what;
  EXPECT_LT(max_rel_error(plain, cpu), 1e-4) << what << " (unfused)";
  std::printf("[ fusion ] %-48s vs unfused %.1e%s, vs cpu %.1e\n", what.c_str(), vs_plain,
              identical ? " (bit-identical)" : "", vs_cpu);
}

TEST_F(VulkanTest, FusedDecodeMatvecsMatchUnfusedAndCpu) {
  for (const Case& c : kCases) {
    const std::vector<float> x = random_floats(size_t(c.cols), 7);
    const Projections ref = project(*cpu, c, x);
    for (const BackendPair& bp : matvec_backends(vk)) {
      const std::string what = c.name + ", " + bp.label;
      const Projections f = project(*bp.fused, c, x), p = project(*bp.plain, c, x);
      expect_close(f.q, p.q, ref.q, what + ": q");
      expect_close(f.k, p.k, ref.k, what + ": k");
      expect_close(f.v, p.v, ref.v, what + ": v");
      expect_close(f.gate, p.gate, ref.gate, what + ": silu(gate) * up");
      expect_close(f.up, p.up, ref.up, what + ": up");
      // Fused: q, k and v one dispatch; gate, up and SwiGLU one. Otherwise three each.
      EXPECT_EQ(f.qkv.dispatches, c.fuses ? 1u : 3u) << what;
      EXPECT_EQ(f.ffn.dispatches, c.fuses ? 1u : 3u) << what;
      EXPECT_EQ(ran_fused(f.qkv) && ran_fused(f.ffn), c.fuses) << what;
      EXPECT_EQ(p.qkv.dispatches, 3u) << what;
      EXPECT_EQ(p.ffn.dispatches, 3u) << what;
      EXPECT_FALSE(ran_fused(p.qkv) || ran_fused(p.ffn)) << what;
    }
  }
}

// FKV_VULKAN_FUSE_SWIGLU=0 (for timing the fold): gate and up still one dispatch, the SwiGLU its own.
TEST_F(VulkanTest, SwigluFoldCanBeLeftOut) {
  std::vector<std::string> vars = {"FKV_VULKAN_FUSE_SWIGLU=0"};
  if (is_lavapipe(*vk)) vars.push_back("FKV_VULKAN_GPU_KERNELS=1");
  Backend& be = EnvBackends::get(vars);
  const Case& c = kCases[2];  // q4_0x8
  const std::vector<float> x = random_floats(size_t(c.cols), 7);
  const Projections ref = project(*cpu, c, x), f = project(be, c, x);
  EXPECT_LT(max_rel_error(f.gate, ref.gate), 1e-4);
  EXPECT_LT(max_rel_error(f.up, ref.up), 1e-4);
  EXPECT_EQ(f.qkv.dispatches, 1u);
  EXPECT_EQ(f.ffn.dispatches, 2u);
  EXPECT_TRUE(ran_fused(f.ffn));
}

// Sequences that must not become one dispatch, or only partly, against the CPU and the unfused backend:
// one output written twice (the second product wins), the same x in another buffer, a fourth product of
// one x (three fused, then one), weights of another type, a SwiGLU into a third buffer or of the products
// in the other order (not folded: gate and up as one dispatch, then the SwiGLU).
TEST_F(VulkanTest, DecodeMatvecsThatMustNotFuseStayApart) {
  const int64_t cols = 1024;
  const int64_t rows[4] = {65, 33, 17, 9};
  const std::vector<float> x = random_floats(cols, 3);
  struct Step {
    const char* name;
    uint64_t fused_dispatches;
    // (backend, weights, x, x2, outputs)
    void (*run)(Backend&, const Weight*, const Weight&, DeviceBuffer&, DeviceBuffer&, BufferPtr*);
  };
  const Step steps[] = {
      {"one output twice", 2,
       [](Backend& be, const Weight* w, const Weight&, DeviceBuffer& x, DeviceBuffer&, BufferPtr* o) {
         be.matmul(w[0], x, 1, *o[0]);
         be.matmul(w[1], x, 1, *o[1]);
         be.matmul(w[2], x, 1, *o[0]);  // joins neither: o[0] is written by the held q
       }},
      {"x in another buffer", 2,
       [](Backend& be, const Weight* w, const Weight&, DeviceBuffer& x, DeviceBuffer& x2, BufferPtr* o) {
         be.matmul(w[0], x, 1, *o[0]);
         be.matmul(w[1], x2, 1, *o[1]);
         be.matmul(w[2], x2, 1, *o[2]);
       }},
      {"four products of one x", 2,
       [](Backend& be, const Weight* w, const Weight&, DeviceBuffer& x, DeviceBuffer&, BufferPtr* o) {
         for (int i = 0; i < 4; ++i) be.matmul(w[i], x, 1, *o[i]);
       }},
      {"another weight type", 2,
       [](Backend& be, const Weight* w, const Weight& q8, DeviceBuffer& x, DeviceBuffer&, BufferPtr* o) {
         be.matmul(w[0], x, 1, *o[0]);
         be.matmul(w[2], x, 1, *o[2]);
         be.matmul(q8, x, 1, *o[1]);
       }},
      {"swiglu into a third buffer", 2,
       [](Backend& be, const Weight* w, const Weight&, DeviceBuffer& x, DeviceBuffer&, BufferPtr* o) {
         be.matmul(w[3], x, 1, *o[0]);
         be.matmul(w[3], x, 1, *o[1]);
         be.swiglu(*o[0], *o[1], 9, *o[2]);
       }},
      {"swiglu of up and gate", 2,
       [](Backend& be, const Weight* w, const Weight&, DeviceBuffer& x, DeviceBuffer&, BufferPtr* o) {
         be.matmul(w[3], x, 1, *o[0]);
         be.matmul(w[3], x, 1, *o[1]);
         be.swiglu(*o[1], *o[0], 9, *o[1]);
       }},
  };
  auto run = [&](Backend& be, const Step& st, VulkanProfile* prof) {
    BufferPtr wb[4], ob[4];
    Weight w[4];
    for (int i = 0; i < 4; ++i) {
      const auto bytes = random_weight(GgmlType::Q4_0, rows[i], cols, uint32_t(60 + i));
      wb[i] = be.alloc(bytes.size(), "weight");
      w[i] = Weight{wb[i].get(), GgmlType::Q4_0, rows[i], cols};
      be.upload_weight(w[i], bytes.data(), bytes.size());
      ob[i] = be.alloc(size_t(rows[0]) * 4, "out");
      const std::vector<uint8_t> nan(size_t(rows[0]) * 4, 0xFF);
      be.upload(*ob[i], 0, nan.data(), nan.size());
    }
    const auto q8_bytes = random_weight(GgmlType::Q8_0, rows[1], cols, 70);
    BufferPtr q8b = be.alloc(q8_bytes.size(), "q8 weight");
    const Weight q8{q8b.get(), GgmlType::Q8_0, rows[1], cols};
    be.upload_weight(q8, q8_bytes.data(), q8_bytes.size());
    BufferPtr xb = be.alloc(cols * 4, "x"), x2 = be.alloc(cols * 4, "x2");
    be.upload(*xb, 0, x.data(), cols * 4);
    be.upload(*x2, 0, x.data(), cols * 4);
    if (prof) {
      *prof = profiled(be, [&] { st.run(be, w, q8, *xb, *x2, ob); });
    } else {
      st.run(be, w, q8, *xb, *x2, ob);
    }
    std::vector<std::vector<float>> out;
    for (int i = 0; i < 4; ++i) out.push_back(read_back(be, *ob[i], size_t(rows[0])));
    return out;
  };
  for (const Step& st : steps) {
    const auto ref = run(*cpu, st, nullptr);
    for (const BackendPair& bp : matvec_backends(vk)) {
      VulkanProfile pf, pp;
      const auto f = run(*bp.fused, st, &pf), p = run(*bp.plain, st, &pp);
      for (int i = 0; i < 4; ++i) {
        // NaN where neither backend wrote; compare the written prefix (every step writes o[i] from 0).
        std::vector<float> fi, pi, ri;
        for (size_t e = 0; e < ref[i].size(); ++e) {
          if (std::isnan(ref[i][e])) continue;
          fi.push_back(f[i][e]);
          pi.push_back(p[i][e]);
          ri.push_back(ref[i][e]);
        }
        EXPECT_LT(max_rel_error(fi, ri), 1e-4) << st.name << ", " << bp.label << ": output " << i;
        EXPECT_LT(max_rel_error(fi, pi), 1e-5) << st.name << ", " << bp.label << ": output " << i;
        for (size_t e = 0; e < ref[i].size(); ++e)
          if (std::isnan(ref[i][e])) {
            EXPECT_TRUE(std::isnan(f[i][e])) << st.name << ": output " << i << " written at " << e;
          }
      }
      EXPECT_EQ(pf.dispatches, st.fused_dispatches) << st.name << ", " << bp.label;
      EXPECT_TRUE(ran_fused(pf)) << st.name << ", " << bp.label;
      EXPECT_FALSE(ran_fused(pp)) << st.name << ", " << bp.label;
    }
  }
}

// A weight larger than one storage binding on lavapipe (128 MiB) is bound in pieces and not fused; a
// smaller product of the same x after it runs alone. On a GPU (1 GiB bindings) both fuse.
TEST_F(VulkanTest, FusedMatvecsLeaveWeightsBoundInPiecesApart) {
  const int64_t rows = 16700, small_rows = 33, cols = 14336;
  std::vector<uint8_t> bytes = random_q4_0_bytes(rows, cols, 5);
  const auto small = random_weight(GgmlType::Q4_0, small_rows, cols, 8);
  const std::vector<float> x = random_floats(cols, 9);
  Backend& be = *matvec_backends(vk)[0].fused;
  std::vector<float> got[2], want[2];
  for (Backend* b : {&be, cpu.get()}) {
    BufferPtr wb = b->alloc(bytes.size(), "big weight"), sb = b->alloc(small.size(), "small weight");
    const Weight w{wb.get(), GgmlType::Q4_0, rows, cols}, ws{sb.get(), GgmlType::Q4_0, small_rows, cols};
    b->upload_weight(w, bytes.data(), bytes.size());
    b->upload_weight(ws, small.data(), small.size());
    BufferPtr xb = b->alloc(cols * 4, "x"), o = b->alloc(rows * 4, "out"),
              os = b->alloc(small_rows * 4, "out");
    b->upload(*xb, 0, x.data(), cols * 4);
    auto ops = [&] {
      b->matmul(w, *xb, 1, *o);
      b->matmul(ws, *xb, 1, *os);
    };
    if (b == &be) {
      const VulkanProfile p = profiled(be, ops);
      const bool pieces = bytes.size() > (size_t(128) << 20) && is_lavapipe(be);
      EXPECT_EQ(ran_fused(p), !pieces);
    } else {
      ops();
    }
    (b == &be ? got : want)[0] = read_back(*b, *o, rows);
    (b == &be ? got : want)[1] = read_back(*b, *os, small_rows);
  }
  bytes = {};
  EXPECT_LT(max_rel_error(got[0], want[0]), 1e-4);
  EXPECT_LT(max_rel_error(got[1], want[1]), 1e-4);
}

// Whole decode steps of a random model with the decode matvec: logits with fusion on and off agree (the
// recorded step is replayed, so the fused dispatches run from the replay too) and agree with the CPU; the
// recorded step has the fused dispatches and barriers: per layer q k v with the RoPE of q, k and the store
// of k, v folded in | split and merge | wo | add + norm | gate up + SwiGLU | down | add + norm.
TEST_F(VulkanTest, FusedDecodeStepsMatchUnfusedAndCpu) {
  const BackendPair bp = matvec_backends(vk)[0];
  for (GgmlType type : {GgmlType::F16, GgmlType::Q4_0}) {
    const std::string what = type_name(uint32_t(type));
    RandomModelFile fused(*bp.fused, "small", type);
    const auto plain = LlamaModel::load(*fused.file, *bp.plain);
    const auto cpu_model = LlamaModel::load(*fused.file, *cpu);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 16; ++i) tokens.push_back(int32_t((i * 53 + 5) % 500));
    SessionOptions so;
    const uint64_t replays = vulkan_replay_info(*bp.fused).replays;
    const auto f = logits_per_position(*fused.model, so, tokens, 4);
    const VulkanReplayInfo info = vulkan_replay_info(*bp.fused);
    const auto p = logits_per_position(*plain, so, tokens, 4);
    const auto c = logits_per_position(*cpu_model, so, tokens, 4);
    const size_t vocab = size_t(fused.model->hparams().vocab);
    EXPECT_LT(max_rel_error(f, p), 1e-5) << what;
    std::printf("[ fusion ] %s decode: fused vs unfused %.1e%s\n", what.c_str(), max_rel_error(f, p),
                std::memcmp(f.data(), p.data(), f.size() * 4) == 0 ? " (bit-identical)" : "");
    expect_logits_agree(f, c, tokens.size(), vocab, what + " fused vs cpu");
    const uint32_t layers = uint32_t(fused.model->hparams().n_layers);
    EXPECT_GT(info.replays, replays) << what << ": no decode step was replayed";
    // With the norm fold, wo | add + norm and down | add + norm are one dispatch each (the last layer's down
    // and add stay apart: the output norm reads a copy of the last row).
    const uint32_t folded = vulkan_norm_fold(*bp.fused) ? 2 * layers - 1 : 0;
    // embed; the first layer's norm; 7 per layer (above); output norm, logits.
    EXPECT_EQ(info.dispatches, 1 + 1 + 7 * layers + 2 - folded) << what;
    // The step's input, the first norm, 7 per layer, copy of the last row | output norm | logits.
    EXPECT_EQ(info.barriers, 1 + 1 + 7 * layers + 3 - folded) << what;
  }
}

}  // namespace
}  // namespace fkv::test
