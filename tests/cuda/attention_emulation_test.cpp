// The full-cache decode attention kernel and its split merge (cuda/attention_decode_kernels.cuh) compiled as
// host code and run block by block under the thread emulation of kernel_emulation.h, against attention in
// double precision over the same cache values. It checks the kernels' indexing (lanes, tiles, splits, GQA
// chunks), barriers and math without a GPU (not the compiler, cp.async or the launch configuration); the
// workspace and shared memory start as NaN, so that a read of anything not written shows. Runs everywhere.
// Each case runs twice: decode kernel + merge kernel, and the decode kernel merging in its last block
// (kMerge), launched twice over the same counters (a graph replay) with the blocks in shuffled orders, so
// that every split gets to be the last one; its counters must be back to zero after each launch.
#include "kernel_emulation.h"
// The kernels, compiled as host code against the emulation.
#include "attention_decode_kernels.cuh"
// Ends the kernel code's host-emulation section.
#undef __shared__

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace fkv::test {
namespace {

using namespace fkv::cuda::attn2;

struct Case {
  int n_heads, n_kv, d;
  bool f16;
  int len;       // positions seen by the last query token (pos0 + n)
  int n;         // query tokens (1 or 2)
  int capacity;  // splits sized for this many positions, pos0 read from a device scalar (0: eager, len)
};

template <class KV, int D>
void run_typed(const Case& c) {
  std::mt19937 rng(11 + c.len + 7 * c.n_heads + c.d);
  std::uniform_real_distribution<float> big(-3, 3), unit(-1, 1);
  const int max_len = c.capacity > 0 ? c.capacity : c.len;
  const size_t row = size_t(c.n_kv) * D;
  // The cache holds max_len rows; rows past len are NaN (never read).
  std::vector<KV> kc(size_t(max_len) * row), vc(kc.size());
  std::vector<double> kd(size_t(c.len) * row), vd(kd.size());
  for (size_t e = 0; e < kc.size(); ++e) {
    const bool in = e < kd.size();
    const float kx = in ? big(rng) : NAN, vx = in ? unit(rng) : NAN;
    if constexpr (sizeof(KV) == 2) {
      kc[e] = __float2half_rn(kx);
      vc[e] = __float2half_rn(vx);
      if (in) kd[e] = __half2float(kc[e]), vd[e] = __half2float(vc[e]);
    } else {
      kc[e] = kx;
      vc[e] = vx;
      if (in) kd[e] = kx, vd[e] = vx;
    }
  }
  const int H = c.n_heads, n = c.n, pos0 = c.len - c.n;
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> q(size_t(n) * H * D);
  for (float& x : q) x = big(rng);

  // Reference: token i sees positions 0 .. pos0 + i.
  std::vector<double> want(q.size());
  const int group = H / c.n_kv;
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < H; ++h) {
      const int kvh = h / group, seen = pos0 + i + 1;
      const float* qh = q.data() + (size_t(i) * H + h) * D;
      std::vector<double> s(static_cast<size_t>(seen));
      double m = -INFINITY;
      for (int t = 0; t < seen; ++t) {
        double a = 0;
        for (int d = 0; d < D; ++d) a += double(qh[d]) * scale * kd[size_t(t) * row + size_t(kvh) * D + d];
        s[size_t(t)] = a;
        m = std::max(m, a);
      }
      double l = 0;
      for (double& x : s) l += (x = std::exp(x - m));
      for (int d = 0; d < D; ++d) {
        double o = 0;
        for (int t = 0; t < seen; ++t) o += s[size_t(t)] * vd[size_t(t) * row + size_t(kvh) * D + d];
        want[(size_t(i) * H + h) * D + d] = o / l;
      }
    }

  const int n_splits = (max_len + kSpan - 1) / kSpan;
  int pos0_dev = pos0;
  const int* p0 = c.capacity > 0 ? &pos0_dev : nullptr;
  const int arg_pos0 = c.capacity > 0 ? -12345 : pos0;  // ignored when p0 is set
  const unsigned blocks = unsigned(c.n_kv * ((group + kHC - 1) / kHC));
  const dim3 grid(blocks, unsigned(n_splits), unsigned(n));
  auto check = [&](const std::vector<float>& out, const char* how) {
    double num = 0, den = 0;
    bool finite = true;
    for (size_t e = 0; e < out.size(); ++e) {
      finite = finite && std::isfinite(out[e]);
      num += (out[e] - want[e]) * (out[e] - want[e]);
      den += want[e] * want[e];
    }
    EXPECT_TRUE(finite) << how << ": non-finite output";
    EXPECT_LT(std::sqrt(num / den), 1e-5)
        << how << ": heads " << H << "/" << c.n_kv << " head_dim " << D << " len " << c.len << " n " << n
        << (c.f16 ? " f16" : " f32") << " capacity " << c.capacity;
  };

  {  // decode kernel, then the merge kernel
    std::vector<float> ws(size_t(n) * H * n_splits * (D + 2), NAN), out(q.size(), NAN);
    fkv_emu::launch(grid, kThreads, 0, [&] {
      decode_kernel<KV, D, false>(q.data(), kc.data(), vc.data(), arg_pos0, p0, H, c.n_kv, scale, n_splits,
                                  ws.data(), nullptr, nullptr);
    });
    fkv_emu::launch(dim3(unsigned(H), unsigned(n), unsigned((D + kCombineDims - 1) / kCombineDims)),
                    kCombineThreads, size_t(n_splits),
                    [&] { combine_kernel(ws.data(), arg_pos0, p0, H, D, kSpan, n_splits, out.data()); });
    check(out, "combine launch");
  }
  // The merge in the decode kernel's last block: the default order, then shuffled ones.
  std::vector<unsigned> counters(size_t(n) * blocks, 0);
  for (int run = 0; run < 3; ++run) {
    std::vector<float> ws(size_t(n) * H * n_splits * (D + 2), NAN), out(q.size(), NAN);
    std::vector<unsigned> order;
    if (run > 0) {
      order.resize(size_t(grid.x) * grid.y * grid.z);
      for (unsigned k = 0; k < order.size(); ++k) order[k] = k;
      std::shuffle(order.begin(), order.end(), rng);
    }
    fkv_emu::launch(
        grid, kThreads, 0,
        [&] {
          decode_kernel<KV, D, true>(q.data(), kc.data(), vc.data(), arg_pos0, p0, H, c.n_kv, scale, n_splits,
                                     ws.data(), out.data(), counters.data());
        },
        order);
    check(out, run == 0 ? "merge in the last block" : "merge in the last block, shuffled blocks");
    for (unsigned v : counters) ASSERT_EQ(v, 0u) << "a counter was not reset";
  }
}

void run_case(const Case& c) {
  if (c.d == 128) return c.f16 ? run_typed<__half, 128>(c) : run_typed<float, 128>(c);
  ASSERT_EQ(c.d, 64);
  c.f16 ? run_typed<__half, 64>(c) : run_typed<float, 64>(c);
}

// Lengths around the tile and split edges (tiles of 16 to 64 rows, splits of 256), GQA groups of 1, 3, 4, 6
// and 8 (6 and 8: two chunks of query heads), one and two query tokens, eager and graph-style (splits for the
// whole cache, pos0 from the device scalar) launches, one long context (129 splits).
TEST(AttentionEmulation, HeadDim128) {
  run_case({8, 2, 128, true, 1, 1, 0});
  run_case({8, 2, 128, true, 4100, 1, 0});
  run_case({8, 2, 128, false, 513, 1, 0});
  run_case({4, 4, 128, false, 7, 1, 0});
  run_case({16, 2, 128, true, 302, 2, 0});
  run_case({8, 2, 128, true, 290, 1, 1000});
}

TEST(AttentionEmulation, HeadDim64) {
  run_case({9, 3, 64, true, 7, 1, 0});
  run_case({9, 3, 64, true, 513, 2, 0});
  run_case({9, 3, 64, false, 257, 1, 0});
  run_case({6, 1, 64, false, 1, 1, 0});
  run_case({6, 1, 64, true, 65, 2, 600});
  run_case({4, 1, 64, true, 32900, 1, 0});  // 129 splits: the merge's (max, sum) loads take two rounds
}

}  // namespace
}  // namespace fkv::test
