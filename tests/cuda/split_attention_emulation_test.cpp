// The decode split-attention kernels (cuda/split_attention_kernels.cuh: z formation, the chirp-z spectrum,
// the per-span main kernel, the combine) compiled as host code and run block by block with one std::thread
// per CUDA thread (barriers for __syncthreads, per-warp exchanges for shuffles), on split-cache states built
// by the CPU backend, against the CPU reference. It checks the kernels' indexing, barriers and math without
// a GPU (not the compiler, the memory model or the launch configuration); runs on every machine.
#include "kernel_emulation.h"
#include "split_attention_kernels.cuh"
// Ends the kernel code's host-emulation section.
#undef __shared__

#include <gtest/gtest.h>

#include <random>

#include "backend/cpu/cpu_backend.h"
#include "fourier/fourier_basis.h"
#include "fourier/fourier_profile.h"
#include "kv/split_kv_cache.h"
#include "util/half.h"

namespace fkv::test {
namespace {

using namespace fkv::cuda;
using namespace fkv::cuda::splitattn;

// Runs kernel() as a grid of blocks of kThreads emulated threads (kernel_emulation.h).
template <class F>
void launch(dim3 grid, size_t dyn_floats, const F& kernel, int threads = kThreads) {
  fkv_emu::launch(grid, threads, dyn_floats, kernel);
}

struct Case {
  int n_heads, n_kv, d;
  KvType type;
  int S, W, N, fit;
  double ratio;
  bool lsq;
  int M;  // middle length at the query
  int n;  // queries
  bool chirp;
  bool one_head_all_compressed = false;  // V of KV head 0: every dim compressed, the others by `ratio`
  bool fft = false;                      // the middle by column-block FFTs (L.fft)
};

std::vector<uint8_t> fetch(Backend& b, const DeviceBuffer* buf) {
  std::vector<uint8_t> h(buf ? buf->size() : 0);
  if (buf && !h.empty()) b.download(*buf, 0, h.data(), h.size());
  return h;
}

void run_case(const Case& c) {
  auto cpu = create_cpu_backend(2);
  const AttentionShape s{c.n_heads, c.n_kv, c.d, 1.0f / std::sqrt(float(c.d))};
  const int pos0 = c.S + c.W + c.M, cap = pos0 + c.n + 64;
  SplitKvConfig cfg;
  cfg.policy = "fourier";
  cfg.n_layers = 1;
  cfg.shape = s;
  cfg.capacity = cap;
  cfg.type = c.type;
  cfg.sink = c.S;
  cfg.window = c.W;
  cfg.n_freq = c.N;
  cfg.fit_tokens = c.fit;
  cfg.least_squares_norm = c.lsq;
  FourierProfile prof = heuristic_fourier_profile(1, c.n_kv, c.d, c.ratio);
  if (c.one_head_all_compressed) {
    prof.layers[0].v[0].clear();
    for (int j = 0; j < c.d; ++j) prof.layers[0].v[0].push_back(j);
  }
  cfg.k_dims.push_back(split_dims(prof.layers[0].k, c.d));
  cfg.v_dims.push_back(split_dims(prof.layers[0].v, c.d));
  SplitKvCache cache(*cpu, cfg);
  auto& CL = const_cast<SplitKvLayer&>(cache.layer(0));
  const int row_len = c.n_kv * c.d;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  // The state: positions 0 .. pos0-1 with a drift, appended by the CPU in chunks of 256.
  {
    auto kb = cpu->alloc(size_t(256) * row_len * 4, "k"), vb = cpu->alloc(size_t(256) * row_len * 4, "v");
    std::vector<float> k(size_t(256) * row_len), v(k.size());
    for (int p0 = 0; p0 < pos0; p0 += 256) {
      const int m = std::min(256, pos0 - p0);
      for (int r = 0; r < m; ++r)
        for (int j = 0; j < row_len; ++j) {
          const int p = p0 + r;
          k[size_t(r) * row_len + j] = 1.5f * std::sin(0.02f * p * (1 + j % 7) + j) + 0.4f * nd(rng);
          v[size_t(r) * row_len + j] = std::cos(0.015f * p * (1 + j % 5) + j) + 0.3f * nd(rng);
        }
      cpu->upload(*kb, 0, k.data(), size_t(m) * row_len * 4);
      cpu->upload(*vb, 0, v.data(), size_t(m) * row_len * 4);
      cpu->split_kv_append(*kb, *vb, m, p0, s, CL);
    }
  }
  ASSERT_EQ(CL.fitted(pos0), c.M >= std::min(c.fit, CL.middle));
  // Queries and the chunk's own rows.
  std::vector<float> q(size_t(c.n) * c.n_heads * c.d), kc(size_t(c.n) * row_len), vc(kc.size());
  for (float& x : q) x = nd(rng);
  for (float& x : kc) x = 1.5f * nd(rng);
  for (float& x : vc) x = nd(rng);
  auto qb = cpu->alloc(q.size() * 4, "q"), kcb = cpu->alloc(kc.size() * 4, "kc"),
       vcb = cpu->alloc(vc.size() * 4, "vc");
  auto ob = cpu->alloc(q.size() * 4, "out");
  cpu->upload(*qb, 0, q.data(), q.size() * 4);
  cpu->upload(*kcb, 0, kc.data(), kc.size() * 4);
  cpu->upload(*vcb, 0, vc.data(), vc.size() * 4);
  cpu->split_attention(*qb, *kcb, *vcb, c.n, pos0, s, CL, SplitAttentionPath::kReference, *ob);
  std::vector<float> want(q.size());
  cpu->download(*ob, 0, want.data(), want.size() * 4);

  // The same state as host "device" pointers.
  struct PartHost {
    std::vector<uint8_t> sink, window, kept, pending, coef, norm;
    std::vector<int> dims;
  } ph[2];
  SplitLayerDev L = split_layer_sizes(CL, s);
  for (int part = 0; part < 2; ++part) {
    const SplitKvPart& P = part == 0 ? CL.k : CL.v;
    PartHost& h = ph[part];
    h.sink = fetch(*cpu, P.sink);
    h.window = fetch(*cpu, P.window);
    h.kept = fetch(*cpu, P.kept);
    h.pending = fetch(*cpu, P.pending);
    h.coef = fetch(*cpu, P.coef);
    h.norm = fetch(*cpu, P.norm);
    for (const auto* v : {&P.dims.keep_offset, &P.dims.comp_offset, &P.dims.keep, &P.dims.comp})
      h.dims.insert(h.dims.end(), v->begin(), v->end());
    SplitPartDev& D = part == 0 ? L.k : L.v;
    auto ptr = [](std::vector<uint8_t>& b) -> void* { return b.empty() ? nullptr : b.data(); };
    D.sink = ptr(h.sink);
    D.window = ptr(h.window);
    D.kept = ptr(h.kept);
    D.pending = static_cast<float*>(ptr(h.pending));
    D.coef = static_cast<float*>(ptr(h.coef));
    D.norm = static_cast<float*>(ptr(h.norm));
    D.dims = h.dims.data();
    D.nk = P.dims.n_keep();
    D.nc = P.dims.n_comp();
  }
  const FourierBasis basis(L.T, 1);
  std::vector<float2> table(static_cast<size_t>(L.T));
  for (int k = 0; k < L.T; ++k) table[size_t(k)] = make_float2(basis.cos_table()[k], basis.sin_table()[k]);
  L.table = table.data();
  ChirpTables ct;
  if (c.chirp) {
    ct = build_chirp_tables(L.T, L.N);
    L.chirp = true;
    L.chirp_n = ct.chirp_n.data();
    L.chirp_m = ct.chirp_m.data();
    L.chirp_seg = ct.seg.data();
    L.chirp_twiddle = ct.twiddle.data();
  }

  if (c.fft) {
    ASSERT_EQ(L.T % L.N, 0) << "SplitKvCache rounds T up to a multiple of N";
    L.fft = true;
  }
  const int sm_count = 132;
  const Plan plan = make_plan(L, c.n, c.n_heads, sm_count);
  const Layout w = layout(L, plan, c.n, c.n_heads);
  std::vector<float> ws(w.total, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
  DirectArgs a{};
  a.L = L;
  a.q = q.data();
  a.k = kc.data();
  a.v = vc.data();
  a.out = out.data();
  a.n = c.n;
  a.pos0 = pos0;
  a.p0_dev = nullptr;
  a.H = c.n_heads;
  a.scale = s.scale;
  a.fitted = CL.fitted(pos0);
  a.plan = plan;
  a.part = ws.data() + w.part;
  a.hpart = ws.data() + w.hpart;
  a.z = reinterpret_cast<float2*>(ws.data() + w.z);
  a.cst = ws.data() + w.cst;
  a.u = reinterpret_cast<float2*>(ws.data() + w.u);
  const unsigned head_blocks = unsigned(L.kvh * plan.hchunks);
  if (a.fitted && L.k.nc > 0) {
    launch(dim3(head_blocks, unsigned((L.N + kPrepFreqs - 1) / kPrepFreqs), unsigned(c.n)), 0,
           [&] { split_prep_kernel(a); });
    if (L.chirp) launch(dim3(unsigned(c.n_heads), unsigned(c.n)), 0, [&] { split_uspec_kernel(a); });
  }
  launch(dim3(head_blocks, unsigned(plan.n_total), unsigned(c.n)), main_smem_bytes(L, plan) / 4,
         [&] { split_main_kernel(a); });
  if (combine_threads(a.fitted && L.T > 0) == kCombineThreads)
    launch(dim3(unsigned(c.n_heads), unsigned(c.n)), combine_smem_bytes(L, plan) / 4,
           [&] { split_combine_kernel<kCombineThreads>(a); }, kCombineThreads);
  else
    launch(dim3(unsigned(c.n_heads), unsigned(c.n)), combine_smem_bytes(L, plan) / 4,
           [&] { split_combine_kernel<kThreads>(a); });

  double num = 0, den = 0;
  bool finite = true;
  for (size_t i = 0; i < out.size(); ++i) {
    finite = finite && std::isfinite(out[i]);
    num += (double(out[i]) - want[i]) * (double(out[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  EXPECT_TRUE(finite) << "non-finite output";
  EXPECT_LT(std::sqrt(num / den), c.type == KvType::kF16 ? 2e-3 : 1e-4)
      << "heads " << c.n_heads << "/" << c.n_kv << " d " << c.d << " N " << c.N << " M " << c.M << " n "
      << c.n << (c.chirp ? " chirp" : c.fft ? " fft" : " per-row") << (a.fitted ? " fitted" : "");
}

TEST(SplitAttentionEmulation, PerRowPath) {
  run_case({9, 3, 64, KvType::kF16, 4, 32, 16, 64, 0.8, false, 257, 1, false});
  run_case({8, 2, 128, KvType::kF16, 4, 48, 1024, 128, 1.0, true, 700, 2, false});
}

// The shapes that failed on an H100 with the first chirp version (N 128 with a fully compressed V head,
// N 512 at head_dim 128, N 1024 with every dim compressed).
TEST(SplitAttentionEmulation, ChirpPath) {
  run_case({9, 3, 64, KvType::kF16, 4, 64, 128, 64, 0.75, true, 2500, 1, true, true});
  run_case({32, 8, 128, KvType::kF32, 4, 64, 512, 256, 0.8, false, 257, 1, true});
  run_case({8, 2, 128, KvType::kF16, 4, 48, 1024, 128, 1.0, true, 700, 2, true});
}

// The middle by N-point FFTs over column blocks (T a multiple of N): one column a block (N 1024), several
// (N 16, 128), a middle shorter than the columns (M 1 < R), before the fit, two queries, all V compressed.
TEST(SplitAttentionEmulation, FftPath) {
  run_case({9, 3, 64, KvType::kF16, 4, 32, 16, 64, 0.8, false, 257, 1, false, false, true});
  run_case({9, 3, 64, KvType::kF16, 4, 64, 128, 64, 0.75, true, 2500, 1, false, true, true});
  run_case({32, 8, 128, KvType::kF32, 4, 64, 512, 256, 0.8, false, 257, 1, false, false, true});
  run_case({8, 2, 128, KvType::kF16, 4, 48, 1024, 128, 1.0, true, 700, 2, false, false, true});
  run_case({4, 1, 64, KvType::kF32, 4, 16, 8, 1, 0.5, false, 1, 1, false, false, true});
  run_case({4, 2, 64, KvType::kF16, 4, 16, 32, 64, 0.5, false, 40, 1, false, false, true});
}

}  // namespace
}  // namespace fkv::test
