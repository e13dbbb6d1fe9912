// GPU time per shader, from timestamp queries (FKV_VULKAN_PROFILE=1): Nsight cannot profile Vulkan compute
// on every NVIDIA setup, and other vendors' tools differ, so the backend measures itself.
//
// Each of CommandRecorder's command buffers (one per ring slot) gets a query pool. A command buffer starts
// with a stamp (top of pipe) and ends with one (bottom of pipe); every dispatch is bracketed by two stamps at
// the compute stage, after its barrier. When the slot's fence has been waited on, collect() reads the stamps
// and adds each dispatch's time to its shader's count and total, and the command buffer's start and end to
// the busy intervals. A stamp at the compute stage waits for the compute work before it, so independent
// dispatches that would overlap run one after another while profiling: each is timed alone.
//
// Phase mode (VulkanProfileMode::kPhases) stamps only where the recorder puts a barrier (bottom of pipe,
// right after it): a phase runs from one stamp to the next (the command buffer's first phase from its start
// stamp, its last to its end stamp), with its dispatches overlapping as they do unprofiled, so its time is
// what it costs the step: launches, ramp, drain and the barrier's wait included. The stamps sit where the
// barriers already wait for everything before them, so they serialize nothing more. A command buffer
// boundary also ends a phase.
//
// Totals: the dispatches' sum; the union of the command buffers' intervals (busy: what the GPU was given);
// their difference is the gap (barriers, copies, launch overhead between dispatches); the span from the
// first stamp to the last also holds the time the GPU waited for the host between submits.
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/vulkan/vulkan_backend.h"
#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_decode_replay.h"
#include "backend/vulkan/vulkan_pipelines.h"

namespace fkv {

// The profile as a table for stderr: shader, calls, total ms, mean us, share of the dispatch time; then
// the totals and the gap.
std::string format_gpu_profile(const VulkanProfile& p, const std::string& device);

class GpuProfiler {
 public:
  // Null, after a line on stderr saying why, when the compute queue's family has no timestamps.
  static std::unique_ptr<GpuProfiler> create(std::shared_ptr<VulkanContext> ctx, size_t slots,
                                             uint32_t dispatches_per_slot, VulkanProfileMode mode);
  ~GpuProfiler();
  GpuProfiler(const GpuProfiler&) = delete;
  GpuProfiler& operator=(const GpuProfiler&) = delete;

  void begin(size_t slot, VkCommandBuffer cmd);  // after vkBeginCommandBuffer
  // The queries for command c about to be recorded in slot, barrier: whether the recorder puts a barrier
  // before it (no pool once the slot's are used up; dispatch mode: none for copies and position updates).
  DispatchStamps command(size_t slot, const Command& c, bool barrier);
  void end(size_t slot, VkCommandBuffer cmd);  // before vkEndCommandBuffer
  void collect(size_t slot);                   // after the slot's fence was waited on
  VulkanProfile profile() const;
  // Whether dispatches were collected since the last mark_reported().
  bool unreported() const { return dispatches_ != reported_; }
  void mark_reported() { reported_ = dispatches_; }

 private:
  struct Phase {
    std::vector<std::string> names;  // its commands' names, each once, in recording order
    uint32_t dispatches = 0;
  };
  struct Slot {
    VkQueryPool pool = VK_NULL_HANDLE;
    // Queries written: the start stamp, two per dispatch (phase mode: one per phase after the first); the
    // end stamp is the last.
    uint32_t used = 0;
    std::vector<const Pipeline*> pipelines;  // dispatch mode: per timed dispatch
    std::vector<Phase> phases;               // phase mode: phase k from stamp k to stamp k + 1
    bool recorded = false;
  };
  struct Total {
    uint64_t calls = 0, dispatches = 0, ticks = 0;
  };
  GpuProfiler(std::shared_ptr<VulkanContext> ctx, size_t slots, uint32_t dispatches_per_slot,
              VulkanProfileMode mode);
  uint64_t ticks(uint64_t from, uint64_t to) const { return (to - from) & mask_; }

  std::shared_ptr<VulkanContext> ctx_;
  VulkanProfileMode mode_;
  std::vector<Slot> slots_;
  uint32_t capacity_ = 0;  // queries per slot
  uint64_t mask_ = ~uint64_t(0);
  double us_per_tick_ = 0;
  std::map<std::string, Total> totals_;
  std::vector<std::pair<uint64_t, uint64_t>> intervals_;  // command buffers' [start, end] stamps
  uint64_t dispatches_ = 0, untimed_ = 0, dispatch_ticks_ = 0, reported_ = 0;
  std::vector<uint64_t> results_;
};

}  // namespace fkv
