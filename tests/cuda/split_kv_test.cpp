// The split-KV-cache ops of the CUDA backend (cuda/split_kv.h) against the CPU reference:
//  - fourier_project / fourier_accumulate on random rows (periods up to 131072, N up to 1024, odd sizes);
//  - split_kv_append from identical states (built by the CPU, copied to the GPU): exact parts and pending
//  rows
//    bit for bit, coefficients and normalisation within 1e-4, for decode and prefill appends, the fit and a
//    refit crossed inside one append and across one-token appends (which the decode graph replays);
//  - split_attention on identical states: the CPU's reference path against the GPU's direct (decode) and
//    materialised (prefill) paths, middle lengths 0, 1, 63 (pending), 257, 2000 and 5000, N 16..1024, kept
//    fractions 0, 20% and 100%, head_dim 64 and 128, GQA groups 1, 3, 4 and 8, f16 and fp32 storage;
//  - whole sessions with --kv fourier and --kv window on a random model: CPU and CUDA logits agree through a
//    prefill that forms and refits the middle and through decode steps replayed as a graph.
// Host-side checks (no GPU needed): the append branch the decode graph keys on, and the precision of the
// rotation recurrence the attention kernels walk the basis with.
#include "split_kv.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cuda_test_util.h"
#include "engine/session.h"
#include "fourier/fourier_basis.h"
#include "fourier/fourier_profile.h"
#include "gguf/gguf_reader.h"
#include "kv/split_kv_cache.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "split_chirp.h"

namespace fkv::test {
namespace {

using SplitKv = CudaOpTest;

// ---- host checks

TEST(SplitKvHost, AppendEventFollowsTheFitAndRefitLengths) {
  cuda::SplitLayerDev L;
  L.S = 4;
  L.W = 10;
  L.T = 1000;
  L.fit = 40;
  for (int pos = 0; pos < L.S + L.W + L.T; ++pos) {
    const cuda::AppendEvent e = cuda::append_event(L, 1, pos);
    const int m = pos - L.S - L.W;  // the middle position of the row leaving the window, if any
    cuda::AppendEvent want = cuda::AppendEvent::kNone;
    if (m >= 0) {
      if (m < L.fit - 1)
        want = cuda::AppendEvent::kPending;
      else if (m == L.fit - 1)
        want = cuda::AppendEvent::kFit;
      else if (m + 1 == 80 || m + 1 == 160 || m + 1 == 320 || m + 1 == 640)
        want = cuda::AppendEvent::kRefit;
      else
        want = cuda::AppendEvent::kAccumulate;
    }
    ASSERT_EQ(int(e), int(want)) << "position " << pos;
  }
  EXPECT_EQ(int(cuda::append_event(L, 2, 100)), int(cuda::AppendEvent::kMany));
}

// A split-cache op carries its layer through Op's pointer and integer slots (deferred or captured ops run
// later); every field must come back, or the launch runs another path than the workspace was sized for (the
// chirp flag and tables were once dropped: the chirp-sized workspace overflowed on an H100).
TEST(SplitKvHost, PackedLayerKeepsEveryField) {
  cuda::SplitLayerDev L;
  int slot[40];
  auto ptr = [&](int j) { return reinterpret_cast<float*>(&slot[j]); };
  L.f16 = false;
  L.kvh = 3;
  L.d = 96;
  L.S = 4;
  L.W = 17;
  L.T = 999;
  L.N = 77;
  L.fit = 33;
  L.lsq = true;
  L.table = reinterpret_cast<const float2*>(ptr(0));
  L.chirp = true;
  L.chirp_n = reinterpret_cast<const float2*>(ptr(1));
  L.chirp_m = reinterpret_cast<const float2*>(ptr(2));
  L.chirp_seg = reinterpret_cast<const float2*>(ptr(3));
  L.chirp_twiddle = reinterpret_cast<const float2*>(ptr(4));
  L.fft = true;
  cuda::SplitPartDev* parts[2] = {&L.k, &L.v};
  for (int q = 0; q < 2; ++q) {
    cuda::SplitPartDev& P = *parts[q];
    const int b = 5 + 8 * q;
    P.sink = ptr(b);
    P.window = ptr(b + 1);
    P.kept = ptr(b + 2);
    P.pending = ptr(b + 3);
    P.coef = ptr(b + 4);
    P.norm = ptr(b + 5);
    P.dims = &slot[b + 6];
    P.nk = 10 + q;
    P.nc = 20 + q;
  }
  cuda::Op op;
  cuda::pack_layer(L, op);
  // The op's own fields come after the layer's (the fft flag once shared a slot with the token count).
  for (int j = 0; j < 3; ++j) {
    op.i[cuda::kSplitI0 + j] = 0;
    op.p[cuda::kSplitP0 + j] = nullptr;
  }
  const cuda::SplitLayerDev u = cuda::unpack_layer(op);
  EXPECT_EQ(u.f16, L.f16);
  EXPECT_EQ(u.kvh, L.kvh);
  EXPECT_EQ(u.d, L.d);
  EXPECT_EQ(u.S, L.S);
  EXPECT_EQ(u.W, L.W);
  EXPECT_EQ(u.T, L.T);
  EXPECT_EQ(u.N, L.N);
  EXPECT_EQ(u.fit, L.fit);
  EXPECT_EQ(u.lsq, L.lsq);
  EXPECT_EQ(u.table, L.table);
  EXPECT_EQ(u.chirp, L.chirp);
  EXPECT_EQ(u.fft, L.fft);
  EXPECT_EQ(u.chirp_n, L.chirp_n);
  EXPECT_EQ(u.chirp_m, L.chirp_m);
  EXPECT_EQ(u.chirp_seg, L.chirp_seg);
  EXPECT_EQ(u.chirp_twiddle, L.chirp_twiddle);
  const cuda::SplitPartDev* want[2] = {&L.k, &L.v};
  const cuda::SplitPartDev* got[2] = {&u.k, &u.v};
  for (int q = 0; q < 2; ++q) {
    SCOPED_TRACE(q == 0 ? "K" : "V");
    EXPECT_EQ(got[q]->sink, want[q]->sink);
    EXPECT_EQ(got[q]->window, want[q]->window);
    EXPECT_EQ(got[q]->kept, want[q]->kept);
    EXPECT_EQ(got[q]->pending, want[q]->pending);
    EXPECT_EQ(got[q]->coef, want[q]->coef);
    EXPECT_EQ(got[q]->norm, want[q]->norm);
    EXPECT_EQ(got[q]->dims, want[q]->dims);
    EXPECT_EQ(got[q]->nk, want[q]->nk);
    EXPECT_EQ(got[q]->nc, want[q]->nc);
  }
}

// The kernels walk cos/sin(2π n m / T) by complex rotation, re-seeded from the exact table every kSplitSeed
// steps; this is the same float arithmetic on the host.
TEST(SplitKvHost, RotationRecurrenceStaysWithinAFewUlps) {
  for (int T : {7, 300, 32321, 131072}) {
    const FourierBasis b(T, 1);
    std::vector<float2> table(static_cast<size_t>(T));
    for (int k = 0; k < T; ++k) table[size_t(k)] = make_float2(b.cos_table()[k], b.sin_table()[k]);
    double worst = 0;
    for (int m : {1, 2, 3, T / 3, T / 2 + 1, T - 1}) {
      const float2 step = table[size_t(m % T)];
      for (int n0 = 0; n0 < 1024; n0 += cuda::kSplitSeed) {
        float2 w = cuda::split_basis(table.data(), n0, m, T);
        for (int n = n0; n < n0 + cuda::kSplitSeed; ++n) {
          const float2 exact = cuda::split_basis(table.data(), n, m, T);
          worst = std::max({worst, double(std::fabs(w.x - exact.x)), double(std::fabs(w.y - exact.y))});
          w = cuda::split_rotate(w, step);
        }
      }
    }
    EXPECT_LT(worst, 2e-6) << "T " << T;
  }
}

// The chirp-z span evaluation (split_chirp.h) with the kernel's own butterflies, run on the host: scores and
// H of a span against direct sums in double.
void host_fft(std::vector<float2>& x, const std::vector<float2>& tw, bool plus) {
  for (int i = 0; i < cuda::kChirpF; ++i) {
    const int j = cuda::chirp_bit_reverse(i, cuda::kChirpLogF);
    if (i < j) std::swap(x[size_t(i)], x[size_t(j)]);
  }
  for (int half = 1; half < cuda::kChirpF; half *= 2)
    for (int b = 0; b < cuda::kChirpF / 2; ++b) cuda::chirp_butterfly(x.data(), half, tw.data(), plus, b);
}

TEST(SplitKvHost, ChirpSpanMatchesDirectSums) {
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  const int F = cuda::kChirpF;
  for (int T : {300, 5000, 32321})
    for (int N : {16, 512, 1024}) {
      const cuda::ChirpTables tb = cuda::build_chirp_tables(T, N);
      const int B = cuda::chirp_span(N);
      ASSERT_EQ(tb.spans, (T + B - 1) / B);
      std::vector<float> zr(static_cast<size_t>(N)), zs(static_cast<size_t>(N));
      for (int n = 0; n < N; ++n) zr[size_t(n)] = nd(rng), zs[size_t(n)] = nd(rng);
      for (int ls : {0, tb.spans - 1}) {
        const int m0 = ls * B, rows = std::min(B, T - m0);
        std::vector<float2> buf(static_cast<size_t>(F));
        for (int j = 0; j < F; ++j)
          buf[size_t(j)] =
              j < N ? cuda::chirp_cmul(make_float2(zr[size_t(j)], -zs[size_t(j)]), tb.chirp_n[size_t(j)])
                    : make_float2(0.0f, 0.0f);
        host_fft(buf, tb.twiddle, false);
        for (int k = 0; k < F; ++k)
          buf[size_t(k)] = cuda::chirp_cmul(buf[size_t(k)], tb.seg[size_t(ls) * F + k]);
        host_fft(buf, tb.twiddle, true);
        double err = 0, rms = 0;
        for (int r = 0; r < rows; ++r) {
          const int m = m0 + r;
          const float got = cuda::chirp_cmul(tb.chirp_m[size_t(m)], buf[size_t(r + N - 1)]).x / float(F);
          double want = 0;
          for (int n = 0; n < N; ++n) {
            const double a = 2.0 * M_PI * double((int64_t(n) * m) % T) / T;
            want += zr[size_t(n)] * std::cos(a) + zs[size_t(n)] * std::sin(a);
          }
          err = std::max(err, std::fabs(got - want));
          rms += want * want;
        }
        rms = std::sqrt(rms / rows);
        EXPECT_LT(err / rms, 2e-5) << "scores: T " << T << " N " << N << " span " << ls;
        // H_n = Σ_r P_r (cos, sin)(2π n (m0 + r) / T).
        std::vector<float> P(static_cast<size_t>(rows));
        for (float& x : P) x = ud(rng);
        for (int j = 0; j < F; ++j) {
          const float2 c = j < rows ? tb.chirp_m[size_t(m0 + j)] : make_float2(0.0f, 0.0f);
          const float p = j < rows ? P[size_t(j)] : 0.0f;
          buf[size_t(j)] = make_float2(p * c.x, p * c.y);
        }
        host_fft(buf, tb.twiddle, true);
        for (int k = 0; k < F; ++k)
          buf[size_t(k)] = cuda::chirp_cmul(buf[size_t(k)], tb.seg[size_t(ls) * F + k]);
        host_fft(buf, tb.twiddle, true);
        double herr = 0, hrms = 0;
        for (int n = 0; n < N; ++n) {
          const float2 h = cuda::chirp_cmul(tb.chirp_n[size_t(n)], buf[size_t(N - 1 - n)]);
          double wc = 0, ws = 0;
          for (int r = 0; r < rows; ++r) {
            const double a = 2.0 * M_PI * double((int64_t(n) * (m0 + r)) % T) / T;
            wc += P[size_t(r)] * std::cos(a);
            ws += P[size_t(r)] * std::sin(a);
          }
          herr = std::max({herr, std::fabs(h.x / F - wc), std::fabs(h.y / F - ws)});
          hrms += wc * wc + ws * ws;
        }
        hrms = std::sqrt(hrms / (2 * N));
        EXPECT_LT(herr / hrms, 2e-5) << "H: T " << T << " N " << N << " span " << ls;
      }
    }
}

// ---- projection and accumulation

void run_projection(SplitKv& t, int rows, int nc, int m0, int T, int N) {
  const std::vector<float> x = t.random_floats(size_t(rows) * nc);
  auto values = t.both(x);
  auto coef = t.poisoned(size_t(nc) * 2 * N);
  t.cpu->fourier_project(*values.c, rows, nc, m0, T, N, *coef.c);
  t.gpu->fourier_project(*values.g, rows, nc, m0, T, N, *coef.g);
  const size_t count = size_t(nc) * 2 * N;
  const auto want = t.read_cpu(coef, count);
  EXPECT_LT(t.rel_error(t.read_gpu(coef, count), want), 1e-4)
      << "project rows " << rows << " dims " << nc << " m0 " << m0 << " T " << T << " N " << N;
  // Accumulation adds to what is there.
  const std::vector<float> more = t.random_floats(size_t(rows) * nc);
  t.cpu->upload(*values.c, 0, more.data(), more.size() * 4);
  t.gpu->upload(*values.g, 0, more.data(), more.size() * 4);
  t.cpu->fourier_accumulate(*values.c, rows, nc, m0 + rows, T, N, *coef.c);
  t.gpu->fourier_accumulate(*values.g, rows, nc, m0 + rows, T, N, *coef.g);
  EXPECT_LT(t.rel_error(t.read_gpu(coef, count), t.read_cpu(coef, count)), 1e-4)
      << "accumulate rows " << rows << " dims " << nc << " m0 " << m0 + rows << " T " << T << " N " << N;
}

TEST_F(SplitKv, ProjectAndAccumulate) {
  run_projection(*this, 1, 1, 0, 1, 1);
  run_projection(*this, 0, 5, 0, 10, 3);
  run_projection(*this, 257, 37, 5, 600, 16);
  run_projection(*this, 5000, 70, 123, 12000, 64);
  run_projection(*this, 300, 129, 0, 131072, 1024);   // large T: exact integer angles
  run_projection(*this, 40, 8, 100000, 120000, 512);  // positions far into the period
  run_projection(*this, 33, 65, 2, 50, 100);          // N > T: frequencies alias
}

// ---- split cache states

struct Case {
  int n_heads, n_kv, d;
  KvType type;
  int S, W, N, fit;
  double ratio;  // fraction of dims compressed (0: every dim kept); < 0: the window policy
  bool lsq = false;
};

std::string describe(const Case& c) {
  return "heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv) + " d " + std::to_string(c.d) +
         (c.type == KvType::kF16 ? " f16" : " f32") + " S " + std::to_string(c.S) + " W " +
         std::to_string(c.W) + " N " + std::to_string(c.N) + " fit " + std::to_string(c.fit) + " ratio " +
         std::to_string(c.ratio) + (c.lsq ? " lsq" : "");
}

AttentionShape shape_of(const Case& c) {
  return AttentionShape{c.n_heads, c.n_kv, c.d, 1.0f / std::sqrt(float(c.d))};
}

SplitKvConfig config_of(const Case& c, int capacity) {
  SplitKvConfig cfg;
  cfg.policy = c.ratio < 0 ? "window" : "fourier";
  cfg.n_layers = 1;
  cfg.shape = shape_of(c);
  cfg.capacity = capacity;
  cfg.type = c.type;
  cfg.sink = c.S;
  cfg.window = c.W;
  cfg.n_freq = c.N;
  cfg.fit_tokens = c.fit;
  cfg.least_squares_norm = c.lsq;
  if (c.ratio > 0) {
    const FourierProfile p = heuristic_fourier_profile(1, c.n_kv, c.d, c.ratio);
    cfg.k_dims.push_back(split_dims(p.layers[0].k, c.d));
    cfg.v_dims.push_back(split_dims(p.layers[0].v, c.d));
  }
  return cfg;
}

// K and V rows of positions 0..len-1 with a slow drift along positions (something for the middle's
// coefficients to represent), and noise.
struct Rows {
  std::vector<float> k, v;
  Rows(int len, int row_len, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    k.resize(size_t(len) * row_len);
    v.resize(size_t(len) * row_len);
    for (int p = 0; p < len; ++p)
      for (int j = 0; j < row_len; ++j) {
        k[size_t(p) * row_len + j] = 1.5f * std::sin(0.02f * p * (1 + j % 7) + j) + 0.4f * nd(rng);
        v[size_t(p) * row_len + j] = std::cos(0.015f * p * (1 + j % 5) + j) + 0.3f * nd(rng);
      }
  }
};

// The same split cache on both backends. States are built by the CPU and copied to the GPU, so that an op
// under test starts from identical bytes.
struct Twin {
  SplitKv& t;
  Case c;
  AttentionShape s;
  int capacity, row_len;
  std::unique_ptr<SplitKvCache> cc, gc;
  CudaOpTest::Pair kin, vin;  // staging for rows appended (both backends)
  int max_rows;

  Twin(SplitKv& test, const Case& cs, int cap, int rows_max = 256)
      : t(test), c(cs), s(shape_of(cs)), capacity(cap), row_len(cs.n_kv * cs.d), max_rows(rows_max) {
    const SplitKvConfig cfg = config_of(c, capacity);
    cc = std::make_unique<SplitKvCache>(*t.cpu, cfg);
    gc = std::make_unique<SplitKvCache>(*t.gpu, cfg);
    kin = t.both(std::vector<float>(size_t(max_rows) * row_len));
    vin = t.both(std::vector<float>(size_t(max_rows) * row_len));
    // Defined contents everywhere (the buffers start undefined): zeros, identical on both sides.
    for (auto& [name, buf] : buffers(lc())) {
      const std::vector<uint8_t> zeros(buf->size(), 0);
      t.cpu->upload(*buf, 0, zeros.data(), zeros.size());
    }
    to_gpu();
  }
  SplitKvLayer& lc() { return const_cast<SplitKvLayer&>(cc->layer(0)); }
  SplitKvLayer& lg() { return const_cast<SplitKvLayer&>(gc->layer(0)); }

  static std::vector<std::pair<std::string, DeviceBuffer*>> buffers(const SplitKvLayer& L) {
    std::vector<std::pair<std::string, DeviceBuffer*>> out;
    for (int q = 0; q < 2; ++q) {
      const SplitKvPart& P = q == 0 ? L.k : L.v;
      const std::string n = q == 0 ? "K " : "V ";
      for (auto [what, b] : {std::pair<const char*, DeviceBuffer*>{"sink", P.sink},
                             {"window", P.window},
                             {"kept", P.kept},
                             {"pending", P.pending},
                             {"coef", P.coef},
                             {"norm", P.norm}})
        if (b) out.emplace_back(n + what, b);
    }
    return out;
  }

  void to_gpu() {
    auto bc = buffers(lc()), bg = buffers(lg());
    ASSERT_EQ(bc.size(), bg.size());
    for (size_t i = 0; i < bc.size(); ++i) {
      std::vector<uint8_t> h(bc[i].second->size());
      t.cpu->download(*bc[i].second, 0, h.data(), h.size());
      t.gpu->upload(*bg[i].second, 0, h.data(), h.size());
    }
  }

  // Appends rows [pos0, pos0 + n) of `r` on the CPU only (building a state), in chunks of max_rows.
  void cpu_append(const Rows& r, int pos0, int n) {
    for (int done = 0; done < n;) {
      const int m = std::min(max_rows, n - done);
      t.cpu->upload(*kin.c, 0, r.k.data() + size_t(pos0 + done) * row_len, size_t(m) * row_len * 4);
      t.cpu->upload(*vin.c, 0, r.v.data() + size_t(pos0 + done) * row_len, size_t(m) * row_len * 4);
      t.cpu->split_kv_append(*kin.c, *vin.c, m, pos0 + done, s, lc());
      done += m;
    }
  }
  // The same append on both backends (n <= max_rows).
  void both_append(const Rows& r, int pos0, int n) {
    for (Backend* b : {t.cpu.get(), t.gpu.get()}) {
      const bool g = b == t.gpu.get();
      b->upload(g ? *kin.g : *kin.c, 0, r.k.data() + size_t(pos0) * row_len, size_t(n) * row_len * 4);
      b->upload(g ? *vin.g : *vin.c, 0, r.v.data() + size_t(pos0) * row_len, size_t(n) * row_len * 4);
      b->split_kv_append(g ? *kin.g : *kin.c, g ? *vin.g : *vin.c, n, pos0, s, g ? lg() : lc());
    }
  }

  // Exact parts and pending rows bit for bit; coefficients and normalisation within tol.
  void expect_same_state(const std::string& where, double tol = 1e-4) {
    auto bc = buffers(lc()), bg = buffers(lg());
    for (size_t i = 0; i < bc.size(); ++i) {
      const std::string& name = bc[i].first;
      const size_t bytes = bc[i].second->size();
      std::vector<uint8_t> a(bytes), b(bytes);
      t.cpu->download(*bc[i].second, 0, a.data(), bytes);
      t.gpu->download(*bg[i].second, 0, b.data(), bytes);
      if (name.find("coef") != std::string::npos || name.find("norm") != std::string::npos) {
        std::vector<float> fa(bytes / 4), fb(bytes / 4);
        std::memcpy(fa.data(), a.data(), bytes);
        std::memcpy(fb.data(), b.data(), bytes);
        EXPECT_LT(CudaOpTest::rel_error(fb, fa), tol) << name << " " << where << " " << describe(c);
      } else {
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), bytes))
            << name << " differs " << where << " " << describe(c);
      }
    }
  }

  // split_attention of n random queries at pos0 over the current (identical) states: the CPU's reference
  // path against the GPU's `path`.
  void expect_same_attention(int pos0, int n, SplitAttentionPath path, unsigned seed) {
    const size_t qn = size_t(n) * s.n_heads * s.head_dim;
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    std::vector<float> q(qn), k(size_t(n) * row_len), v(size_t(n) * row_len);
    for (float& x : q) x = nd(rng);
    for (float& x : k) x = 1.5f * nd(rng);
    for (float& x : v) x = nd(rng);
    auto qb = t.both(q), kb = t.both(k), vb = t.both(v);
    auto out = t.poisoned(qn);
    t.cpu->split_attention(*qb.c, *kb.c, *vb.c, n, pos0, s, lc(), SplitAttentionPath::kReference, *out.c);
    t.gpu->split_attention(*qb.g, *kb.g, *vb.g, n, pos0, s, lg(), path, *out.g);
    const double tol = c.type == KvType::kF16 ? 2e-3 : 1e-4;
    EXPECT_LT(t.rel_error(t.read_gpu(out, qn), t.read_cpu(out, qn)), tol)
        << describe(c) << " pos0 " << pos0 << " middle " << lc().middle_len(pos0) << " n " << n << " path "
        << int(path) << (lc().fitted(pos0) ? " fitted" : " not fitted");
  }
};

// ---- split_kv_append

TEST_F(SplitKv, AppendPrefillChunksCrossFitAndRefit) {
  const Case cases[] = {
      {9, 3, 64, KvType::kF16, 4, 32, 16, 64, 0.8},
      {8, 2, 128, KvType::kF32, 4, 40, 512, 64, 1.0, true},
      {4, 4, 64, KvType::kF32, 3, 20, 64, 50, 0.0},
      {9, 3, 64, KvType::kF16, 4, 32, 16, 64, -1.0},  // window policy
  };
  for (const Case& c : cases) {
    const int cap = 1200;
    Twin tw(*this, c, cap);
    const Rows r(cap, tw.row_len, 3);
    // Chunks of 37 (the first ones fill sink and window, later ones cross the fit at 64 and the refit at 128
    // inside one append), then one chunk longer than the window, then 256 crossing the refits at 256 and 512.
    int pos = 0;
    for (int n : {37, 37, 37, 37, 100, 256, 256}) {
      tw.both_append(r, pos, n);
      pos += n;
      tw.expect_same_state("after appending " + std::to_string(n) + " rows up to " + std::to_string(pos));
    }
  }
}

TEST_F(SplitKv, DecodeAppendsCrossFitAndRefitAndReplay) {
  const Case cases[] = {
      {9, 3, 64, KvType::kF16, 4, 32, 64, 40, 0.8},
      {32, 8, 128, KvType::kF32, 4, 16, 128, 24, 0.75, true},
  };
  for (const Case& c : cases) {
    const int cap = 400;
    Twin tw(*this, c, cap);
    const Rows r(cap, tw.row_len, 5);
    const int start = c.S + c.W + c.fit - 3;  // three pending rows before the fit
    tw.cpu_append(r, 0, start);
    tw.to_gpu();
    const int replays0 = cuda_graph_replays(*gpu);
    const int fit_pos = c.S + c.W + c.fit - 1, refit_pos = c.S + c.W + 2 * c.fit - 1;
    for (int pos = start; pos < c.S + c.W + 2 * c.fit + 6; ++pos) {  // the fit, then the refit at 2·fit
      tw.both_append(r, pos, 1);
      // One synchronisation per step, so that repeated steps are captured and replayed; the state is
      // compared (many downloads) around the fit and the refit and every eighth step.
      const bool check = pos <= fit_pos + 1 || (pos >= refit_pos - 1 && pos <= refit_pos + 1) || pos % 8 == 0;
      if (check)
        tw.expect_same_state("after the one-token append at " + std::to_string(pos));
      else
        gpu->synchronize();
    }
    EXPECT_GT(cuda_graph_replays(*gpu) - replays0, 0) << "no one-token append was replayed as a graph";
  }
}

TEST_F(SplitKv, RejectsPastTheCache) {
  const Case c{4, 2, 64, KvType::kF16, 4, 8, 16, 8, 0.5};
  Twin tw(*this, c, 40);
  const Rows r(64, tw.row_len, 1);
  gpu->upload(*tw.kin.g, 0, r.k.data(), size_t(tw.row_len) * 4);
  // The layer ends at S + W + T: T is the middle's room rounded up to a multiple of N (SplitKvCache), so
  // past the session's 40 positions (which SplitKvCache::store rejects) the backend's own guard is there.
  const SplitKvLayer& L = tw.lg();
  const int end = L.sink + L.window + L.middle;
  EXPECT_GE(end, 40);
  EXPECT_THROW(gpu->split_kv_append(*tw.kin.g, *tw.vin.g, 1, end, tw.s, tw.lg()), Error);
}

// ---- split_attention

void attention_cases(SplitKv& t, const Case& c, std::initializer_list<int> middles,
                     std::initializer_list<int> ns) {
  for (int M : middles) {
    const int pos0 = M == 0 ? c.S + c.W / 2 : c.S + c.W + M;
    const int cap = pos0 + 256 + 100;
    Twin tw(t, c, cap);
    const Rows r(pos0, tw.row_len, unsigned(7 + M));
    tw.cpu_append(r, 0, pos0);
    tw.to_gpu();
    for (int n : ns) {
      tw.expect_same_attention(pos0, n, SplitAttentionPath::kAuto, unsigned(100 + n));
      if (n <= 8) tw.expect_same_attention(pos0, n, SplitAttentionPath::kReference, unsigned(200 + n));
    }
  }
}

TEST_F(SplitKv, AttentionSmallHeadsAllMiddles) {
  // 20% of dims kept; fit 64: middle 1 and 63 are pending, 257 and 5000 fitted (5000 after refits).
  const Case c{9, 3, 64, KvType::kF16, 4, 32, 16, 64, 0.8};
  attention_cases(*this, c, {0, 1, 63, 257, 5000}, {1, 2, 7, 37, 256});
}

TEST_F(SplitKv, AttentionHeadDim128Fp32) {
  const Case c{32, 8, 128, KvType::kF32, 4, 64, 512, 256, 0.8};
  attention_cases(*this, c, {1, 257, 2000}, {1, 256});
}

TEST_F(SplitKv, AttentionEveryDimCompressed) {
  const Case c{8, 2, 128, KvType::kF16, 4, 48, 1024, 128, 1.0, true};
  attention_cases(*this, c, {700}, {1, 7});
}

TEST_F(SplitKv, AttentionEveryDimKept) {
  const Case c{4, 4, 64, KvType::kF32, 4, 40, 64, 64, 0.0};
  attention_cases(*this, c, {257}, {1, 37});
}

TEST_F(SplitKv, AttentionLargeGroup) {
  // 8 query heads per KV head: two head chunks per block row.
  const Case c{16, 2, 64, KvType::kF16, 2, 100, 64, 100, 0.5};
  attention_cases(*this, c, {300}, {1, 3, 40});
}

// The chirp-z evaluation of fitted middle spans (FKV_CUDA_CHIRP=1, off by default: it failed on an H100 for
// N >= 128 at 16c1e87); the other tests take the per-row path.
TEST_F(SplitKv, AttentionChirpPath) {
  setenv("FKV_CUDA_CHIRP", "1", 1);
  gpu = create_cuda_backend(-1);
  unsetenv("FKV_CUDA_CHIRP");
  attention_cases(*this, Case{9, 3, 64, KvType::kF16, 4, 32, 16, 64, 0.8}, {257, 5000}, {1, 7});
  attention_cases(*this, Case{9, 3, 64, KvType::kF16, 4, 32, 128, 64, 0.8}, {257, 3000}, {1});
  attention_cases(*this, Case{32, 8, 128, KvType::kF32, 4, 64, 512, 256, 0.8}, {257, 2000}, {1});
  attention_cases(*this, Case{8, 2, 128, KvType::kF16, 4, 48, 1024, 128, 1.0, true}, {700}, {1, 7});
}

TEST_F(SplitKv, AttentionMoreFrequenciesThanTheChirpSpan) {
  attention_cases(*this, Case{4, 2, 64, KvType::kF32, 4, 32, 1100, 128, 0.75}, {1500}, {1, 2});
}

TEST_F(SplitKv, AttentionWindowPolicy) {
  const Case c{9, 3, 64, KvType::kF16, 4, 100, 16, 16, -1.0};
  for (int pos0 : {0, 3, 50, 3000}) {
    Twin tw(*this, c, pos0 + 300);
    const Rows r(std::max(pos0, 1), tw.row_len, 9);
    tw.cpu_append(r, 0, pos0);
    tw.to_gpu();
    for (int n : {1, 37, 256})
      tw.expect_same_attention(pos0, n, SplitAttentionPath::kAuto, unsigned(pos0 + n));
  }
}

// Decode steps over a growing, refitting middle, as the engine issues them (attend, then append the same k,
// v; one download per step): the GPU appends and attends itself (no copies), the CPU does the same; the
// steps replay as a graph.
TEST_F(SplitKv, DecodeStepsTrackTheCpu) {
  const Case c{9, 3, 64, KvType::kF16, 4, 16, 32, 24, 0.75};
  const int cap = 200;
  Twin tw(*this, c, cap);
  const Rows r(cap, tw.row_len, 11);
  tw.both_append(r, 0, 30);
  const size_t qn = size_t(c.n_heads) * c.d;
  auto q = poisoned(qn), out = poisoned(qn);
  const int replays0 = cuda_graph_replays(*gpu);
  for (int pos = 30; pos < 120; ++pos) {
    const std::vector<float> qv = random_floats(qn, -2.0f, 2.0f);
    std::vector<float> got, want;
    for (Backend* b : {cpu.get(), gpu.get()}) {
      const bool g = b == gpu.get();
      b->upload(g ? *q.g : *q.c, 0, qv.data(), qn * 4);
      b->upload(g ? *tw.kin.g : *tw.kin.c, 0, r.k.data() + size_t(pos) * tw.row_len, size_t(tw.row_len) * 4);
      b->upload(g ? *tw.vin.g : *tw.vin.c, 0, r.v.data() + size_t(pos) * tw.row_len, size_t(tw.row_len) * 4);
      SplitKvLayer& L = g ? tw.lg() : tw.lc();
      b->split_attention(g ? *q.g : *q.c, g ? *tw.kin.g : *tw.kin.c, g ? *tw.vin.g : *tw.vin.c, 1, pos, tw.s,
                         L, g ? SplitAttentionPath::kAuto : SplitAttentionPath::kReference,
                         g ? *out.g : *out.c);
      b->split_kv_append(g ? *tw.kin.g : *tw.kin.c, g ? *tw.vin.g : *tw.vin.c, 1, pos, tw.s, L);
      (g ? got : want) = read(*b, g ? *out.g : *out.c, qn);
    }
    ASSERT_LT(rel_error(got, want), 2e-3)
        << "decode step at position " << pos << " (middle " << tw.lc().middle_len(pos) << ")";
  }
  tw.expect_same_state("after 90 decode steps", 1e-4);
  EXPECT_GT(cuda_graph_replays(*gpu) - replays0, 40)
      << "one-token split-cache steps were not replayed as a graph";
}

// ---- whole sessions

TEST_F(SplitKv, SessionFourierAndWindowMatchCpu) {
  const std::string path = (std::filesystem::temp_directory_path() / "fkv_cuda_split_small.gguf").string();
  RandomModelOptions mo;
  mo.shape = "small";
  mo.type = GgmlType::F32;  // fp32 GEMMs on both backends: what differs is the KV cache path
  mo.seed = 3;
  make_random_model(mo, path);
  auto file = GgufFile::open(path);
  auto cpu_model = LlamaModel::load(*file, *cpu);
  auto gpu_model = LlamaModel::load(*file, *gpu);
  const int vocab = cpu_model->hparams().vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 1100; ++i) prompt.push_back(int32_t((i * 37 + 11) % vocab));
  for (const char* policy : {"fourier", "window"}) {
    SessionOptions so;
    so.ctx = 1400;
    so.max_batch = 256;
    so.kv.policy = policy;
    so.kv.sink = 4;
    so.kv.window = 128;
    so.kv.fourier_n = 64;
    so.kv.fourier_fit_tokens = 256;  // middle 968 after the prompt: fit at 256, refit at 512; 1024 in decode
    Session a(*cpu_model, so), b(*gpu_model, so);
    const int replays0 = cuda_graph_replays(*gpu);
    std::vector<float> la = a.eval(prompt), lb = b.eval(prompt);
    EXPECT_LT(rel_error(lb, la), 2e-3) << policy << " prefill logits";
    for (int step = 0; step < 80; ++step) {
      const int32_t token = int32_t(std::max_element(la.begin(), la.end()) - la.begin());
      la = a.eval(std::span<const int32_t>(&token, 1));
      lb = b.eval(std::span<const int32_t>(&token, 1));
      ASSERT_LT(rel_error(lb, la), 2e-3) << policy << " decode step " << step;
    }
    EXPECT_GE(cuda_graph_replays(*gpu) - replays0, 40)
        << policy << ": decode steps were not replayed as a graph";
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace fkv::test
