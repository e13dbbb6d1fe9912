#include "backend/cpu/split_kv_kernels.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "fourier/chirp_dft.h"
#include "fourier/fourier_transform.h"
#include "util/error.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace fkv::cpu {
namespace {

// Tables depend only on (T, N) and are immutable: built once per process and shared by every layer.
template <class Table>
const Table& shared_table(int period, int n_freq) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::unique_ptr<Table>> tables;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = tables[{period, n_freq}];
  if (!slot) slot = std::make_unique<Table>(period, n_freq);
  return *slot;
}

void load(const uint8_t* base, KvType type, size_t first, int count, float* dst) {
  if (type == KvType::kF32) {
    const float* src = reinterpret_cast<const float*>(base) + first;
    std::copy(src, src + count, dst);
  } else {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(base) + first;
    for (int i = 0; i < count; ++i) dst[i] = half_to_float(src[i]);
  }
}

void store(const float* src, KvType type, uint8_t* base, size_t first, int count) {
  if (type == KvType::kF32) {
    std::copy(src, src + count, reinterpret_cast<float*>(base) + first);
  } else {
    uint16_t* dst = reinterpret_cast<uint16_t*>(base) + first;
    for (int i = 0; i < count; ++i) dst[i] = float_to_half(src[i]);
  }
}

float round_to(KvType type, float x) {
  return type == KvType::kF32 ? x : half_to_float(float_to_half(x));
}

void parallel(ThreadPool* pool, int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (pool)
    pool->parallel_for(n, 1, body);
  else
    body(0, n);
}

int ring_row(const SplitKvLayer& c, int p) {
  return (p - c.sink) % c.window;
}

// Running sum, min and max of the true values (norm[4..6]) over `count` more rows [count, nc].
void update_stats(const float* rows, int count, int nc, float* norm) {
  for (int j = 0; j < nc; ++j) {
    float* st = norm + size_t(j) * kSplitNormStride;
    for (int i = 0; i < count; ++i) {
      const float x = rows[size_t(i) * nc + j];
      st[4] += x;
      st[5] = std::min(st[5], x);
      st[6] = std::max(st[6], x);
    }
  }
}

// Range normalisation over middle positions 0 .. M-1: μ, ρ from the running statistics, μ̃, ρ̃ from the
// reconstruction of every position with the coefficients as they are now.
void refit(const FourierBasis& basis, int M, int nc, const float* coef, float* norm, bool least_squares) {
  std::vector<float> rec(size_t(M) * nc);
  fourier_reconstruct(basis, coef, nc, 0, M, rec.data());
  for (int j = 0; j < nc; ++j) {
    float* st = norm + size_t(j) * kSplitNormStride;
    const RangeNorm rr = range_norm(rec.data() + j, nc, rec.data() + j, nc, M);
    const float mu = st[4] / float(M);
    st[0] = mu;
    st[1] = std::max(st[6] - mu, mu - st[5]);
    st[2] = rr.mu_rec;
    st[3] = rr.rho_rec;
    if (least_squares && rr.rho_rec > 0) {
      // Σ_p x_p·x̃_p = (1/N) Σ_n w_n (C_n² + S_n²) (Parseval on the stored coefficients), w_0 = 1/2.
      const int N = basis.n_freq();
      const float* cc = coef + size_t(j) * 2 * N;
      double sxr = 0, srr = 0;
      for (int n = 0; n < N; ++n)
        sxr += (n == 0 ? 0.5 : 1.0) * (double(cc[n]) * cc[n] + double(cc[N + n]) * cc[N + n]);
      sxr /= N;
      for (int p = 0; p < M; ++p) srr += double(rec[size_t(p) * nc + j]) * rec[size_t(p) * nc + j];
      const double cov = sxr / M - double(mu) * rr.mu_rec, var = srr / M - double(rr.mu_rec) * rr.mu_rec;
      st[1] = var > 0 ? float(cov / var) * rr.rho_rec : 0.0f;
    }
  }
}

// Middle rows m0 .. m0+cnt-1 (full rows [cnt, n_kv_heads * d], fp32, already rounded to the cache type) enter
// one part: kept dims to `kept`, compressed dims to `pending` until the fit, to the coefficients after it.
void append_middle(const SplitKvLayer& c, const SplitKvPart& part, HostSplitPart& h, const float* rows,
                   int cnt, int m0, int n_kv, int d) {
  const SplitKvDims& dims = part.dims;
  const int nk = dims.n_keep(), nc = dims.n_comp(), row_len = n_kv * d;
  std::vector<float> kept(static_cast<size_t>(nk)), comp(size_t(cnt) * nc);
  for (int r = 0; r < cnt; ++r) {
    const float* x = rows + size_t(r) * row_len;
    for (int g = 0; g < n_kv; ++g) {
      for (int i = dims.keep_offset[g]; i < dims.keep_offset[g + 1]; ++i)
        kept[size_t(i)] = x[g * d + dims.keep[i]];
      for (int i = dims.comp_offset[g]; i < dims.comp_offset[g + 1]; ++i)
        comp[size_t(r) * nc + i] = x[g * d + dims.comp[i]];
    }
    if (nk > 0) store(kept.data(), c.type, h.kept, size_t(m0 + r) * nk, nk);
  }
  if (nc == 0) return;
  const FourierBasis& basis = shared_table<FourierBasis>(c.middle, c.n_freq);
  int r = 0;
  for (; r < cnt && m0 + r < c.fit_tokens; ++r) {
    std::copy(comp.begin() + size_t(r) * nc, comp.begin() + size_t(r + 1) * nc,
              h.pending + size_t(m0 + r) * nc);
    if (m0 + r + 1 == c.fit_tokens) {
      // The fit: project the pending rows, start the running statistics, normalise over them.
      fourier_project(basis, h.pending, c.fit_tokens, nc, nc, 0, h.coef);
      for (int j = 0; j < nc; ++j) {
        float* st = h.norm + size_t(j) * kSplitNormStride;
        st[4] = st[7] = 0;
        st[5] = st[6] = h.pending[j];
      }
      update_stats(h.pending, c.fit_tokens, nc, h.norm);
      refit(basis, c.fit_tokens, nc, h.coef, h.norm, c.least_squares_norm);
    }
  }
  // After the fit: accumulate, in segments that end where the middle reaches a refit length.
  while (r < cnt) {
    const int m = m0 + r, next = c.next_refit(m);
    const int seg = next > 0 ? std::min(cnt - r, next - m) : cnt - r;
    const float* rows_c = comp.data() + size_t(r) * nc;
    fourier_accumulate(basis, rows_c, seg, nc, nc, m, h.coef);
    update_stats(rows_c, seg, nc, h.norm);
    r += seg;
    if (m + seg == next) refit(basis, next, nc, h.coef, h.norm, c.least_squares_norm);
  }
}

// One KV head's visible rows as full fp32 head rows [L, d]: sink, middle, window (positions < pos0), then the
// chunk's n rows. The middle's compressed dims are the pending values before the fit; after it, x̂ when
// `reconstruct`, else zero (the spectral and fused paths add them their own way).
struct HeadRows {
  std::vector<float> k, v;
  int sink = 0, middle = 0, window = 0, chunk = 0;  // row counts per part, in this order
  int before() const { return sink + middle + window; }
};

void reconstruct_head(const SplitKvLayer& c, const SplitKvPart& part, const HostSplitPart& h, int g, int m0,
                      int rows, int d, float* out /* [rows, d], compressed dims written */) {
  const SplitKvDims& dims = part.dims;
  const int c0 = dims.comp_offset[g], ncg = dims.comp_offset[g + 1] - c0, N = c.n_freq;
  if (ncg == 0 || rows == 0) return;
  const FourierBasis& basis = shared_table<FourierBasis>(c.middle, N);
  std::vector<float> rec(size_t(rows) * ncg);
  fourier_reconstruct(basis, h.coef + size_t(c0) * 2 * N, ncg, m0, rows, rec.data());
  for (int j = 0; j < ncg; ++j) {
    const float* nm = h.norm + size_t(c0 + j) * kSplitNormStride;
    const RangeNorm rn{nm[0], nm[1], nm[2], nm[3]};
    const float a = rn.a(), b = rn.b();
    const int dim = dims.comp[c0 + j];
    for (int r = 0; r < rows; ++r) out[size_t(r) * d + dim] = a * rec[size_t(r) * ncg + j] + b;
  }
}

void fill_head(const SplitKvLayer& c, const SplitKvPart& part, const HostSplitPart& h, const float* chunk,
               int n, int pos0, int g, int n_kv, int d, bool reconstruct, HeadRows& hr,
               std::vector<float>& out) {
  const int row_len = n_kv * d, t = pos0;
  const SplitKvDims& dims = part.dims;
  const int nk = dims.n_keep(), nc = dims.n_comp();
  hr.sink = c.sink_len(t);
  hr.middle = c.middle_len(t);
  hr.window = std::max(0, t - c.window_begin(t));
  hr.chunk = n;
  out.assign(size_t(hr.before() + n) * d, 0.0f);
  float* o = out.data();
  for (int p = 0; p < hr.sink; ++p, o += d) load(h.sink, c.type, size_t(p) * row_len + size_t(g) * d, d, o);
  float* mid = o;
  std::vector<float> kept(static_cast<size_t>(nk));
  const int k0 = nk ? dims.keep_offset[g] : 0, nkg = nk ? dims.keep_offset[g + 1] - k0 : 0;
  const int c0 = nc ? dims.comp_offset[g] : 0, ncg = nc ? dims.comp_offset[g + 1] - c0 : 0;
  const bool fitted = c.fitted(t);
  for (int m = 0; m < hr.middle; ++m, o += d) {
    if (nkg > 0) {
      load(h.kept, c.type, size_t(m) * nk + k0, nkg, kept.data());
      for (int i = 0; i < nkg; ++i) o[dims.keep[k0 + i]] = kept[size_t(i)];
    }
    if (!fitted)
      for (int i = 0; i < ncg; ++i) o[dims.comp[c0 + i]] = h.pending[size_t(m) * nc + c0 + i];
  }
  if (fitted && reconstruct) reconstruct_head(c, part, h, g, 0, hr.middle, d, mid);
  for (int p = c.window_begin(t); p < t; ++p, o += d)
    load(h.window, c.type, size_t(ring_row(c, p)) * row_len + size_t(g) * d, d, o);
  for (int i = 0; i < n; ++i, o += d)
    for (int j = 0; j < d; ++j) o[j] = round_to(c.type, chunk[size_t(i) * row_len + size_t(g) * d + j]);
}

// The reference: every visible row materialised, then the loop of cpu::attention, operation for operation.
void attend_rows(const float* qi, const float* k, const float* v, int len, int d, float scale, float* oi,
                 std::vector<float>& scores, std::vector<float>& acc) {
  scores.resize(size_t(len));
  float max_score = -INFINITY;
  for (int t = 0; t < len; ++t) {
    scores[t] = dot(qi, k + size_t(t) * d, d) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float total = 0;
  for (int t = 0; t < len; ++t) total += scores[t] = std::exp(scores[t] - max_score);
  acc.assign(size_t(d), 0.0f);
  for (int t = 0; t < len; ++t) {
    const float p = scores[t];
    const float* row = v + size_t(t) * d;
    for (int j = 0; j < d; ++j) acc[j] += p * row[j];
  }
  for (int j = 0; j < d; ++j) oi[j] = acc[j] / total;
}

// Online-softmax state of one query head (fused path).
struct Online {
  float m = -INFINITY, l = 0;
  std::vector<float> acc;
};

void online_block(Online& st, const float* qi, const float* k, const float* v, int rows, int d, float scale,
                  std::vector<float>& s) {
  if (rows <= 0) return;
  s.resize(size_t(rows));
  float bm = -INFINITY;
  for (int t = 0; t < rows; ++t) bm = std::max(bm, s[t] = dot(qi, k + size_t(t) * d, d) * scale);
  const float m_new = std::max(st.m, bm);
  const float c = std::exp(st.m - m_new);
  st.l *= c;
  for (int j = 0; j < d; ++j) st.acc[j] *= c;
  for (int t = 0; t < rows; ++t) {
    const float p = std::exp(s[t] - m_new);
    st.l += p;
    const float* row = v + size_t(t) * d;
    for (int j = 0; j < d; ++j) st.acc[j] += p * row[j];
  }
  st.m = m_new;
}

constexpr int kFusedTile = 64;

void fused_head(const SplitKvLayer& c, const HostSplitPart& hk, const HostSplitPart& hv, bool fitted,
                const HeadRows& hr, const std::vector<float>& kr, const std::vector<float>& vr,
                const float* q, int n, int g, const AttentionShape& s, float* out) {
  const int d = s.head_dim, group = s.n_heads / s.n_kv_heads;
  std::vector<Online> st(size_t(n) * group);
  for (auto& x : st) x.acc.assign(size_t(d), 0.0f);
  std::vector<float> scores;
  auto qrow = [&](int i, int hh) { return q + (size_t(i) * s.n_heads + size_t(g) * group + hh) * d; };
  auto all_queries = [&](const float* k, const float* v, int rows) {
    for (int i = 0; i < n; ++i)
      for (int hh = 0; hh < group; ++hh)
        online_block(st[size_t(i) * group + hh], qrow(i, hh), k, v, rows, d, s.scale, scores);
  };
  all_queries(kr.data(), vr.data(), hr.sink);
  // The middle, tile by tile: compressed dims reconstructed into a tile-sized buffer, used by every query
  // head of the group, then dropped.
  const size_t mid0 = size_t(hr.sink) * d;
  std::vector<float> tk, tv;
  for (int m0 = 0; m0 < hr.middle; m0 += kFusedTile) {
    const int rows = std::min(kFusedTile, hr.middle - m0);
    tk.assign(kr.begin() + mid0 + size_t(m0) * d, kr.begin() + mid0 + size_t(m0 + rows) * d);
    tv.assign(vr.begin() + mid0 + size_t(m0) * d, vr.begin() + mid0 + size_t(m0 + rows) * d);
    if (fitted) {
      reconstruct_head(c, c.k, hk, g, m0, rows, d, tk.data());
      reconstruct_head(c, c.v, hv, g, m0, rows, d, tv.data());
    }
    all_queries(tk.data(), tv.data(), rows);
  }
  const size_t w0 = size_t(hr.sink + hr.middle) * d;
  all_queries(kr.data() + w0, vr.data() + w0, hr.window);
  const size_t c0 = size_t(hr.before()) * d;
  for (int i = 0; i < n; ++i)
    for (int hh = 0; hh < group; ++hh)
      online_block(st[size_t(i) * group + hh], qrow(i, hh), kr.data() + c0, vr.data() + c0, i + 1, d, s.scale,
                   scores);
  for (int i = 0; i < n; ++i)
    for (int hh = 0; hh < group; ++hh) {
      const Online& x = st[size_t(i) * group + hh];
      float* oi = out + (size_t(i) * s.n_heads + size_t(g) * group + hh) * d;
      for (int j = 0; j < d; ++j) oi[j] = x.acc[j] / x.l;
    }
}

// Spectral path for one query head (FOURIER.md path 3): the compressed dims' score part at every middle
// position by one inverse DFT of g = Σ_j q_j a_j (C_j, S_j), their output by one forward DFT of the weights.
// kr/vr hold the visible rows with the middle's compressed dims zero, so that the ordinary loop gives
// everything else.
void spectral_query(const SplitKvLayer& c, const HostSplitPart& hk, const HostSplitPart& hv,
                    const HeadRows& hr, const float* kr, const float* vr, const float* qi, int len, int g,
                    int d, float scale, float* oi, std::vector<float>& scores, std::vector<float>& acc) {
  using cf = std::complex<float>;
  const int N = c.n_freq, M = hr.middle, m_row = hr.sink;
  const ChirpDft& dft = shared_table<ChirpDft>(c.middle, N);
  const float inv_n = 1.0f / float(N);
  scores.resize(size_t(len));
  for (int t = 0; t < len; ++t) scores[t] = dot(qi, kr + size_t(t) * d, d) * scale;
  const SplitKvDims& dk = c.k.dims;
  const int kc0 = dk.comp_offset[g], nck = dk.comp_offset[g + 1] - kc0;
  if (nck > 0 && M > 0) {
    std::vector<float> gc(size_t(N), 0.0f), gs(size_t(N), 0.0f);
    float cst = 0;
    for (int j = 0; j < nck; ++j) {
      const float* nm = hk.norm + size_t(kc0 + j) * kSplitNormStride;
      const RangeNorm rn{nm[0], nm[1], nm[2], nm[3]};
      const float qj = qi[dk.comp[kc0 + j]], qa = qj * rn.a();
      cst += qj * rn.b();
      const float* cc = hk.coef + size_t(kc0 + j) * 2 * N;
      for (int f = 0; f < N; ++f) {
        gc[size_t(f)] += qa * cc[f];
        gs[size_t(f)] += qa * cc[N + f];
      }
    }
    std::vector<cf> x(static_cast<size_t>(N)), y(static_cast<size_t>(M));
    for (int f = 0; f < N; ++f) x[size_t(f)] = cf(gc[size_t(f)], -gs[size_t(f)]);
    x[0] *= 0.5f;  // the DC term's half weight (fourier_transform.h)
    dft.inverse(x.data(), M, y.data());
    for (int m = 0; m < M; ++m) scores[size_t(m_row + m)] += (y[size_t(m)].real() * inv_n + cst) * scale;
  }
  float max_score = -INFINITY;
  for (int t = 0; t < len; ++t) max_score = std::max(max_score, scores[t]);
  float total = 0;
  for (int t = 0; t < len; ++t) total += scores[t] = std::exp(scores[t] - max_score);
  acc.assign(size_t(d), 0.0f);
  for (int t = 0; t < len; ++t) {
    const float p = scores[t];
    const float* row = vr + size_t(t) * d;
    for (int j = 0; j < d; ++j) acc[j] += p * row[j];
  }
  const SplitKvDims& dv = c.v.dims;
  const int vc0 = dv.comp_offset[g], ncv = dv.comp_offset[g + 1] - vc0;
  if (ncv > 0 && M > 0) {
    std::vector<cf> w(static_cast<size_t>(M)), z(static_cast<size_t>(N));
    float sum_p = 0;
    for (int m = 0; m < M; ++m) {
      w[size_t(m)] = cf(scores[size_t(m_row + m)], 0.0f);
      sum_p += scores[size_t(m_row + m)];
    }
    dft.forward(w.data(), M, z.data());
    std::vector<float> hc(static_cast<size_t>(N)), hs(static_cast<size_t>(N));
    for (int f = 0; f < N; ++f) {
      hc[size_t(f)] = z[size_t(f)].real();
      hs[size_t(f)] = -z[size_t(f)].imag();
    }
    hc[0] *= 0.5f;
    for (int j = 0; j < ncv; ++j) {
      const float* nm = hv.norm + size_t(vc0 + j) * kSplitNormStride;
      const RangeNorm rn{nm[0], nm[1], nm[2], nm[3]};
      const float* cc = hv.coef + size_t(vc0 + j) * 2 * N;
      acc[size_t(dv.comp[vc0 + j])] +=
          rn.a() * inv_n * (dot(cc, hc.data(), N) + dot(cc + N, hs.data(), N)) + rn.b() * sum_p;
    }
  }
  for (int j = 0; j < d; ++j) oi[j] = acc[j] / total;
}

}  // namespace

void split_kv_append(const float* k, const float* v, int n, int pos0, const AttentionShape& s,
                     const SplitKvLayer& c, HostSplitPart& hk, HostSplitPart& hv) {
  const int n_kv = s.n_kv_heads, d = s.head_dim, row_len = n_kv * d;
  require(pos0 >= 0 && n >= 0, ErrorCode::kInvalidArgument, "split_kv_append: negative position or count");
  if (c.middle > 0)
    require(pos0 + n <= c.sink + c.window + c.middle, ErrorCode::kContextFull,
            "split KV cache holds " + std::to_string(c.sink + c.window + c.middle) +
                " positions; asked to store up to " + std::to_string(pos0 + n));
  for (int i = 0; i < n && pos0 + i < c.sink; ++i) {
    store(k + size_t(i) * row_len, c.type, hk.sink, size_t(pos0 + i) * row_len, row_len);
    store(v + size_t(i) * row_len, c.type, hv.sink, size_t(pos0 + i) * row_len, row_len);
  }
  const int e0 = c.window_begin(pos0), e1 = c.window_begin(pos0 + n);
  if (c.middle > 0 && e1 > e0) {
    // Positions e0 .. e1-1 leave the window, oldest first: from the ring, or straight from the chunk when it
    // is longer than the window (rounded to the cache type as the ring would have held them).
    const int cnt = e1 - e0;
    std::vector<float> rk(size_t(cnt) * row_len), rv(size_t(cnt) * row_len);
    for (int p = e0; p < e1; ++p) {
      float* ok = rk.data() + size_t(p - e0) * row_len;
      float* ov = rv.data() + size_t(p - e0) * row_len;
      if (p < pos0) {
        load(hk.window, c.type, size_t(ring_row(c, p)) * row_len, row_len, ok);
        load(hv.window, c.type, size_t(ring_row(c, p)) * row_len, row_len, ov);
      } else {
        for (int j = 0; j < row_len; ++j) {
          ok[j] = round_to(c.type, k[size_t(p - pos0) * row_len + j]);
          ov[j] = round_to(c.type, v[size_t(p - pos0) * row_len + j]);
        }
      }
    }
    append_middle(c, c.k, hk, rk.data(), cnt, e0 - c.sink, n_kv, d);
    append_middle(c, c.v, hv, rv.data(), cnt, e0 - c.sink, n_kv, d);
  }
  for (int p = std::max({e1, pos0, c.sink}); p < pos0 + n; ++p) {
    store(k + size_t(p - pos0) * row_len, c.type, hk.window, size_t(ring_row(c, p)) * row_len, row_len);
    store(v + size_t(p - pos0) * row_len, c.type, hv.window, size_t(ring_row(c, p)) * row_len, row_len);
  }
}

SplitAttentionPath resolve_split_path(int n, int pos0, const AttentionShape& s, const SplitKvLayer& c,
                                      SplitAttentionPath path) {
  if (path != SplitAttentionPath::kAuto) return path;
  const int M = c.middle_len(pos0);
  const int nc = c.k.dims.n_comp() + c.v.dims.n_comp();
  if (!c.fitted(pos0) || nc == 0 || M == 0) return SplitAttentionPath::kReference;
  double length = 1;
  while (length < c.middle + c.n_freq - 1) length *= 2;
  // Reference/fused rebuild every middle row once per call; spectral pays two chirp transforms (two FFTs
  // each) per query head, whatever the middle's length.
  const double rebuild = double(M) * 2.0 * c.n_freq * nc;
  const double spectral =
      double(n) * s.n_heads * (4.0 * 5.0 * length * std::log2(length) + 4.0 * c.n_freq * nc / s.n_kv_heads);
  return spectral < rebuild ? SplitAttentionPath::kSpectral : SplitAttentionPath::kReference;
}

void split_attention(ThreadPool* pool, const float* q, const float* k, const float* v, int n, int pos0,
                     const AttentionShape& s, const SplitKvLayer& c, const HostSplitPart& hk,
                     const HostSplitPart& hv, SplitAttentionPath path, float* out) {
  path = resolve_split_path(n, pos0, s, c, path);
  const int n_kv = s.n_kv_heads, d = s.head_dim, group = s.n_heads / s.n_kv_heads;
  const bool fitted = c.fitted(pos0);
  std::vector<HeadRows> hr(static_cast<size_t>(n_kv));
  std::vector<std::vector<float>> kr(static_cast<size_t>(n_kv)), vr(static_cast<size_t>(n_kv));
  const bool rebuild = path == SplitAttentionPath::kReference;
  parallel(pool, n_kv, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      fill_head(c, c.k, hk, k, n, pos0, int(g), n_kv, d, rebuild, hr[size_t(g)], kr[size_t(g)]);
      fill_head(c, c.v, hv, v, n, pos0, int(g), n_kv, d, rebuild, hr[size_t(g)], vr[size_t(g)]);
    }
  });
  if (path == SplitAttentionPath::kFused) {
    parallel(pool, n_kv, [&](int64_t b, int64_t e) {
      for (int64_t g = b; g < e; ++g)
        fused_head(c, hk, hv, fitted, hr[size_t(g)], kr[size_t(g)], vr[size_t(g)], q, n, int(g), s, out);
    });
    return;
  }
  const bool spectral = path == SplitAttentionPath::kSpectral && fitted;
  parallel(pool, int64_t(n) * s.n_heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores, acc;
    for (int64_t task = b; task < e; ++task) {
      const int i = int(task / s.n_heads), h = int(task % s.n_heads), g = h / group;
      const float* qi = q + (size_t(i) * s.n_heads + h) * d;
      float* oi = out + (size_t(i) * s.n_heads + h) * d;
      const HeadRows& r = hr[size_t(g)];
      const int len = r.before() + i + 1;
      if (spectral)
        spectral_query(c, hk, hv, r, kr[size_t(g)].data(), vr[size_t(g)].data(), qi, len, g, d, s.scale, oi,
                       scores, acc);
      else
        attend_rows(qi, kr[size_t(g)].data(), vr[size_t(g)].data(), len, d, s.scale, oi, scores, acc);
    }
  });
}

}  // namespace fkv::cpu
