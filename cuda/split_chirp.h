// Chirp-z (Bluestein) evaluation of a fitted middle span, shared by the decode kernel (split_attention.cu)
// and host tests: with nm = (n² + m² − (m − n)²)/2, a span of B = F − N + 1 middle rows m0 .. m0+B-1 is
//   score(m) = Re Σ_{n<N} z_n e^{2πinm/T} = Re[ e^{iπm²/T} (u ⊛ g)[m − m0 + N − 1] ],  u_n = z_n e^{iπn²/T},
//   g_t = e^{−iπ(m0 − N + 1 + t)²/T}  (t < F),
// a circular convolution of F = 2048 points that needs no wrap for those outputs (overlap-save), so one
// forward FFT of u, a product with the span's precomputed FFT(g), one inverse FFT. The V side is the adjoint:
//   H_n = Σ_m P_m e^{2πinm/T} = e^{iπn²/T} corr[N − 1 − n],  corr[k] = Σ_j P_{m0+j} e^{iπ(m0+j)²/T} g_{j+k},
// two transforms in the + direction around the same product. Per row and query head this is about
// 4·5·log2(F)·F/B flops instead of 4N, and exact to fp32 rounding (every phase from an exact integer
// (k² mod 2T)). fkv: F fixed at 2048, used for N <= 1024.
#pragma once
#include <cuda_runtime.h>

#include <vector>

namespace fkv::cuda {

constexpr int kChirpF = 2048, kChirpLogF = 11;
constexpr int kChirpMaxN = 1024;

// Middle rows per span for N frequencies.
inline int chirp_span(int n_freq) {
  return kChirpF - n_freq + 1;
}

// Host tables for period T and N frequencies (double precision, rounded once).
struct ChirpTables {
  std::vector<float2> chirp_n;  // [N]: e^{iπ n²/T}
  std::vector<float2> chirp_m;  // [T]: e^{iπ m²/T}
  std::vector<float2> seg;      // [spans][F]: Σ_t g_t e^{−2πitk/F} for span s (m0 = s·B)
  std::vector<float2> twiddle;  // [F/2]: e^{−2πik/F}
  int spans = 0;
};
ChirpTables build_chirp_tables(int period, int n_freq);

__host__ __device__ inline float2 chirp_cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

__host__ __device__ inline int chirp_bit_reverse(int i, int bits) {
  int r = 0;
  for (int k = 0; k < bits; ++k) {
    r = (r << 1) | (i & 1);
    i >>= 1;
  }
  return r;
}

// Butterfly b (< F/2) of the radix-2 decimation-in-time stage whose butterflies span `half` (1, 2, .., F/2),
// in place on bit-reversed input. plus: e^{+2πi/F} twiddles (the inverse direction, unscaled).
__host__ __device__ inline void chirp_butterfly(float2* x, int half, const float2* tw, bool plus, int b) {
  const int pos = b & (half - 1), i0 = ((b - pos) << 1) + pos, i1 = i0 + half;
  float2 w = tw[pos * (kChirpF / (2 * half))];
  if (plus) w.y = -w.y;
  const float2 t = chirp_cmul(x[i1], w), a = x[i0];
  x[i0] = make_float2(a.x + t.x, a.y + t.y);
  x[i1] = make_float2(a.x - t.x, a.y - t.y);
}

}  // namespace fkv::cuda
