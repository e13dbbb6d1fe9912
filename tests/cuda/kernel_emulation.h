// A thread emulation of one CUDA block for compiling kernel headers as host code (see
// split_attention_emulation_test.cpp, attention_emulation_test.cpp): one std::thread per CUDA thread, a
// barrier for __syncthreads, per-warp exchanges for shuffles, static storage for __shared__ arrays, a vector
// for the dynamic shared memory. Include it first, then the kernel header, then `#undef __shared__`.
#pragma once
#define __shared__ static
#define __launch_bounds__(...)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

namespace fkv_emu {
struct Block {
  explicit Block(int threads = 256) : block(threads) {
    for (int w = 0; w < (threads + 31) / 32; ++w) warp[w] = std::make_unique<std::barrier<>>(32);
  }
  std::barrier<> block;
  std::unique_ptr<std::barrier<>> warp[32];
  float warp_buf[32][32] = {};
  std::vector<float> dyn;
};
inline thread_local Block* ctx = nullptr;
inline float* dyn_smem() {
  return ctx->dyn.data();
}

// Runs kernel() as a grid of blocks of `threads` emulated threads (a multiple of 32), blocks one after
// another (the threads are made once per launch; dynamic shared memory is NaN before every block). order:
// the blocks' sequence as indices x + grid.x * (y + grid.y * z), empty for that order (a kernel whose
// blocks cooperate, such as a last-block merge, can be run in other orders).
template <class F>
void launch(dim3 grid, int threads, size_t dyn_floats, const F& kernel,
            const std::vector<unsigned>& order = {});
}  // namespace fkv_emu

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 gridDim;
inline void __syncthreads() {
  fkv_emu::ctx->block.arrive_and_wait();
}
inline float __shfl_xor_sync(unsigned, float v, int o) {
  fkv_emu::Block* c = fkv_emu::ctx;
  const unsigned w = threadIdx.x / 32, l = threadIdx.x % 32;
  c->warp_buf[w][l] = v;
  c->warp[w]->arrive_and_wait();
  const float r = c->warp_buf[w][l ^ unsigned(o)];
  c->warp[w]->arrive_and_wait();
  return r;
}
inline float atomicAdd(float* p, float v) {
  return std::atomic_ref<float>(*p).fetch_add(v);
}
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int k = 0; k < 32; ++k) r |= ((x >> k) & 1u) << (31 - k);
  return r;
}
using std::max;
using std::min;
#define FKV_DYN_SMEM(name) float* name = fkv_emu::dyn_smem()

template <class F>
void fkv_emu::launch(dim3 grid, int threads, size_t dyn_floats, const F& kernel,
                     const std::vector<unsigned>& order) {
  Block b(threads);
  std::barrier<> between(threads);
  std::vector<std::thread> th;
  const unsigned blocks = grid.x * grid.y * grid.z;
  for (unsigned t = 0; t < unsigned(threads); ++t)
    th.emplace_back([&, t] {
      ctx = &b;
      threadIdx = uint3{t, 0, 0};
      gridDim = grid;
      for (unsigned k = 0; k < blocks; ++k) {
        const unsigned idx = order.empty() ? k : order[k];
        if (t == 0) b.dyn.assign(dyn_floats, std::numeric_limits<float>::quiet_NaN());
        between.arrive_and_wait();
        blockIdx = uint3{idx % grid.x, idx / grid.x % grid.y, idx / (grid.x * grid.y)};
        kernel();
        between.arrive_and_wait();
      }
    });
  for (auto& t : th) t.join();
}
