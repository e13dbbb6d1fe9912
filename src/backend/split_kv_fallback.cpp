// The Backend base class's generic split-cache ops: download what the op reads, run the CPU reference
// (backend/cpu/split_kv_kernels.h) on host copies, upload what it writes. Whole buffers move every call, so
// this is for correctness on a backend that has no kernels for these ops yet, not for speed.
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/split_kv_kernels.h"
#include "fourier/fourier_basis.h"
#include "fourier/fourier_transform.h"

namespace fkv {
namespace {

std::vector<uint8_t> fetch(Backend& be, const DeviceBuffer* buf) {
  std::vector<uint8_t> host(buf ? buf->size() : 0);
  if (buf && !host.empty()) be.download(*buf, 0, host.data(), host.size());
  return host;
}

// Host copies of one part's buffers.
struct PartMirror {
  std::vector<uint8_t> sink, window, kept, pending, coef, norm;
  PartMirror(Backend& be, const SplitKvPart& p)
      : sink(fetch(be, p.sink)),
        window(fetch(be, p.window)),
        kept(fetch(be, p.kept)),
        pending(fetch(be, p.pending)),
        coef(fetch(be, p.coef)),
        norm(fetch(be, p.norm)) {}
  cpu::HostSplitPart host() {
    auto f = [](std::vector<uint8_t>& b) { return b.empty() ? nullptr : reinterpret_cast<float*>(b.data()); };
    return {sink.empty() ? nullptr : sink.data(),
            window.empty() ? nullptr : window.data(),
            kept.empty() ? nullptr : kept.data(),
            f(pending),
            f(coef),
            f(norm)};
  }
  void push(Backend& be, const SplitKvPart& p) {
    auto put = [&](DeviceBuffer* buf, const std::vector<uint8_t>& b) {
      if (buf && !b.empty()) be.upload(*buf, 0, b.data(), b.size());
    };
    put(p.sink, sink);
    put(p.window, window);
    put(p.kept, kept);
    put(p.pending, pending);
    put(p.coef, coef);
    put(p.norm, norm);
  }
};

std::vector<float> fetch_floats(Backend& be, const DeviceBuffer& buf, size_t count) {
  std::vector<float> host(count);
  if (count) be.download(buf, 0, host.data(), count * sizeof(float));
  return host;
}

}  // namespace

void Backend::split_kv_append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                              const AttentionShape& s, SplitKvLayer& cache) {
  const size_t count = size_t(n) * s.n_kv_heads * s.head_dim;
  const std::vector<float> hk_in = fetch_floats(*this, k, count), hv_in = fetch_floats(*this, v, count);
  PartMirror mk(*this, cache.k), mv(*this, cache.v);
  cpu::HostSplitPart hk = mk.host(), hv = mv.host();
  cpu::split_kv_append(hk_in.data(), hv_in.data(), n, pos0, s, cache, hk, hv);
  mk.push(*this, cache.k);
  mv.push(*this, cache.v);
}

void Backend::split_attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n,
                              int pos0, const AttentionShape& s, const SplitKvLayer& cache,
                              SplitAttentionPath path, DeviceBuffer& out) {
  const size_t kv_count = size_t(n) * s.n_kv_heads * s.head_dim, q_count = size_t(n) * s.n_heads * s.head_dim;
  const std::vector<float> hq = fetch_floats(*this, q, q_count);
  const std::vector<float> hk_in = fetch_floats(*this, k, kv_count), hv_in = fetch_floats(*this, v, kv_count);
  PartMirror mk(*this, cache.k), mv(*this, cache.v);
  std::vector<float> ho(q_count);
  cpu::split_attention(nullptr, hq.data(), hk_in.data(), hv_in.data(), n, pos0, s, cache, mk.host(),
                       mv.host(), path, ho.data());
  if (q_count) upload(out, 0, ho.data(), q_count * sizeof(float));
}

void Backend::fourier_project(const DeviceBuffer& values, int rows, int n_comp, int m0, int period,
                              int n_freq, DeviceBuffer& coef) {
  const std::vector<float> x = fetch_floats(*this, values, size_t(rows) * n_comp);
  std::vector<float> c(size_t(n_comp) * 2 * n_freq);
  fkv::fourier_project(FourierBasis(period, n_freq), x.data(), rows, n_comp, n_comp, m0, c.data());
  if (!c.empty()) upload(coef, 0, c.data(), c.size() * sizeof(float));
}

void Backend::fourier_accumulate(const DeviceBuffer& values, int rows, int n_comp, int m0, int period,
                                 int n_freq, DeviceBuffer& coef) {
  const std::vector<float> x = fetch_floats(*this, values, size_t(rows) * n_comp);
  std::vector<float> c = fetch_floats(*this, coef, size_t(n_comp) * 2 * n_freq);
  fkv::fourier_accumulate(FourierBasis(period, n_freq), x.data(), rows, n_comp, n_comp, m0, c.data());
  if (!c.empty()) upload(coef, 0, c.data(), c.size() * sizeof(float));
}

}  // namespace fkv
