// The split-cache ops of backend.h (split_kv_append, split_attention, fourier_project, fourier_accumulate)
// as compute shaders, for the `window` and `fourier` KV policies: everything stays on the device, and a
// decode step (n = 1) records dispatches only. docs/VULKAN.md and docs/FOURIER-IMPL.md describe the split.
#pragma once
#include <map>
#include <memory>

#include "backend/backend.h"
#include "backend/vulkan/vulkan_commands.h"
#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_env.h"
#include "backend/vulkan/vulkan_memory.h"
#include "backend/vulkan/vulkan_pipelines.h"

namespace fkv {

class VulkanSplitKv {
 public:
  VulkanSplitKv(std::shared_ptr<VulkanContext> ctx, PipelineCache& pipelines, CommandRecorder& rec);

  void append(const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0, const AttentionShape& s,
              SplitKvLayer& cache);
  // path: kSpectral evaluates a fitted middle's compressed dims in the frequency domain (decode),
  // kReference/kFused rebuild them once for the call (prefill chunks), kAuto picks the cheaper.
  void attention(const DeviceBuffer& q, const DeviceBuffer& k, const DeviceBuffer& v, int n, int pos0,
                 const AttentionShape& s, const SplitKvLayer& cache, SplitAttentionPath path,
                 DeviceBuffer& out);
  // fourier_project (overwrite) or fourier_accumulate; values start at float `values_base`.
  void project(const DeviceBuffer& values, uint32_t values_base, int rows, int n_comp, int m0, int period,
               int n_freq, DeviceBuffer& coef, bool overwrite);

 private:
  using Buffer = std::shared_ptr<VulkanBuffer>;
  // A decode step's K and V entries into the middle as one dispatch (FKV_VULKAN_PAIR_APPEND=0: two, to
  // compare), read when the backend is made.
  const bool pair_append_ = env_switch("FKV_VULKAN_PAIR_APPEND", true);

  Binding bind(const DeviceBuffer* buf, bool write) const;  // the whole buffer; a dummy for nullptr
  // The position register set to pos0 (CommandRecorder::set_position), bound for reading: shaders that take
  // their positions from it make a decode step's commands the same at every position, so the step replays.
  Binding position(int pos0);
  const VulkanBuffer& basis_table(int period);
  const VulkanBuffer& scratch(Buffer& slot, size_t bytes, const char* what);
  void grid_dispatch(const Pipeline& p, const std::vector<Binding>& b, const void* pc, uint32_t pc_bytes,
                     size_t items, uint32_t wg);
  // Chunk rows src_row0 .. of k and v into the sink rows (ring 0) or the window ring, one dispatch for both.
  void store_rows(const DeviceBuffer& k, const DeviceBuffer& v, int src_row0, int count, int pos_first,
                  int pos0, int ring, int sink, int row_len, KvType type, DeviceBuffer& dst_k,
                  DeviceBuffer& dst_v);
  // A decode step's entry of position e0 into the middle for K and V in one dispatch
  // (split_kv_middle_pair.comp); false (nothing recorded) unless both parts take enter_middle's mode 2.
  bool enter_middle_pair(const SplitKvLayer& c, const DeviceBuffer& k, const DeviceBuffer& v, int e0, int cnt,
                         int pos0, const AttentionShape& s);
  void enter_middle(const SplitKvLayer& c, const SplitKvPart& part, const DeviceBuffer& chunk, int e0,
                    int cnt, int pos0, const AttentionShape& s);
  void stats(const DeviceBuffer& rows, uint32_t base, int count, int n_comp, bool init, DeviceBuffer& norm);
  // mode 0/1: the range normalisation over middle rows 0..rows-1; mode 2: x̂ of those rows into `out`.
  void refit(const SplitKvLayer& c, const SplitKvPart& part, int rows, const VulkanBuffer* out = nullptr);

  std::shared_ptr<VulkanContext> ctx_;
  PipelineCache& pipelines_;
  CommandRecorder& rec_;
  bool cpu_device_ = false;
  // Scratch: comp_k_/comp_v_ apart so that the K and V appends need no barrier between them.
  Buffer dummy_, comp_k_, comp_v_, refit_partial_, gvec_, partials_, mid_partials_, rebuilt_k_, rebuilt_v_,
      scores_, kscores_, sums_;
  std::map<int, Buffer> tables_;
};

}  // namespace fkv
