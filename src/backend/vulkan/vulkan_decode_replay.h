// Replaying a decode step from command buffers recorded once.
//
// The engine issues a step's ops one by one, and recording them anew each token (hundreds of dispatches,
// each with its descriptors and push constants) costs host time the GPU spends idle. CommandRecorder turns
// every command it records (dispatch, copy, position update) into a plain-data Command and shows it to
// DecodeReplay, which watches the commands between two synchronization points (a step: download,
// synchronize). When two consecutive steps issue the same commands (same pipelines, bindings, push
// constants, workgroup counts), differing only in the values written to the position register, the step
// is recorded once into reusable command buffers (segments) in which each position update copies from a
// host-visible slot. From then on, a step whose commands keep matching is not recorded: each segment is
// submitted as soon as all its commands have matched (its slots written first), so the GPU starts early;
// the first command that does not match is recorded eagerly together with the matched commands not yet
// submitted, so the result is always that of eager execution. Nothing is compared but what the GPU would
// execute, so an op this file does not know simply never matches while its commands change between steps.
//
// Uploads before a step's first command (the token id) are the step's input; an upload inside a step ends
// the candidate for that step. Replay needs VK_KHR_push_descriptor (every target driver has it); without
// it, or with FKV_VULKAN_REPLAY=0, every command runs eagerly.
#pragma once
#include <vulkan/vulkan.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_memory.h"
#include "backend/vulkan/vulkan_pipelines.h"

namespace fkv {

constexpr uint32_t kMaxCommandBindings = 16;  // the split-cache attention has 16

// One recorded command as data. Two commands are the same when the GPU would execute the same thing,
// except a position update's value, which a replay takes from a slot.
struct Command {
  enum class Kind : uint8_t { kDispatch, kCopy, kSetPosition };
  struct Ref {  // a buffer range the command reads or writes (a binding, or a copy's source/destination)
    VkBuffer handle = VK_NULL_HANDLE;
    uint64_t serial = 0;  // VulkanBuffer::serial(): handles may be reused after a buffer is freed
    VkDeviceSize offset = 0, range = 0;
    bool write = false;
  };
  Kind kind = Kind::kDispatch;
  const Pipeline* pipeline = nullptr;  // dispatch
  uint32_t n_refs = 0;
  Ref refs[kMaxCommandBindings];  // dispatch: bindings; copy: source, destination (range = bytes)
  uint32_t groups[3] = {0, 0, 0};
  uint32_t push_bytes = 0;
  uint8_t push[kPushConstantBytes] = {};
  uint32_t position = 0;  // kSetPosition
  // Reads the range whose contents still lack a scale (CommandRecorder::set_pending) and applies the scale
  // itself.
  bool applies_pending = false;

  bool same_as(const Command& o) const;
};

// Hazards since the last barrier, by buffer: a barrier goes before an access that races with them
// (read-after-write, write-after-write, write-after-read). Independent commands get none.
class HazardTracker {
 public:
  // True when the accesses need a barrier first; then the sets restart from them.
  bool needs_barrier(const Command& c);
  // Whether needs_barrier(c) would be true now (nothing changes).
  bool has_hazard(const Command& c) const;
  void clear();
  // After commands the tracker did not see (a replay): the next access gets a barrier.
  void forget() { unknown_ = true; }

 private:
  std::unordered_set<VkBuffer> written_, read_;
  bool unknown_ = false;
};

// The GPU profile's timestamp queries for a command (vulkan_profile.h). Dispatch mode: pool[first] just
// before a dispatch, after its barrier, and pool[first + 1] after it. Phase mode (phase true): pool[first]
// right after the command's barrier, the end of the phase before it. No pool: none.
struct DispatchStamps {
  VkQueryPool pool = VK_NULL_HANDLE;
  uint32_t first = 0;
  bool phase = false;
};

// Records c into cmd: a barrier when the tracker asks for one, the pipeline (unless *bound is it), pushed
// descriptors and constants, or the copy / update. set is the descriptor set to use without push
// descriptors (VK_NULL_HANDLE with them). A kSetPosition writes position_reg: from slots[slot] when slots
// is given (a replay), else inline (vkCmdUpdateBuffer). stamps times a dispatch. Returns whether a barrier
// was recorded.
bool emit_command(const VulkanContext& ctx, VkCommandBuffer cmd, const Command& c, HazardTracker& hazards,
                  VkPipeline* bound, VkDescriptorSet set, VkBuffer position_reg, VkBuffer slots,
                  uint32_t slot, DispatchStamps stamps = {});
// A global memory barrier: compute and transfer writes before it, compute and transfer accesses after.
void emit_barrier(VkCommandBuffer cmd);

struct ReplayStats {
  uint64_t replays = 0;   // steps run entirely from a recorded replay
  uint32_t commands = 0;  // in the current recorded step (0: none)
  uint32_t dispatches = 0;
  uint32_t barriers = 0;  // recorded in it, the leading one included
  uint32_t segments = 0;
};

class DecodeReplay {
 public:
  struct Hooks {
    std::function<void(const Command&)> run_eager;  // record a command into the eager stream
    std::function<void()> submit_eager;             // submit what the eager stream holds, without waiting
    std::function<void()> forget_hazards;           // the eager stream's tracker must assume anything
  };
  DecodeReplay(std::shared_ptr<VulkanContext> ctx, const VulkanBuffer& position_reg, Hooks hooks);
  ~DecodeReplay();
  DecodeReplay(const DecodeReplay&) = delete;
  DecodeReplay& operator=(const DecodeReplay&) = delete;

  // A command of the current step: true when it is deferred to the replay (the caller records nothing),
  // false when the caller must record it now.
  bool offer(const Command& c);
  // The host writes device memory: before the step's first command an input, else the end of the match.
  void host_write();
  // Stops any match in this step: deferred commands are recorded eagerly and the step is not captured.
  void barrier();
  // A synchronization point: captures the step when it repeated the previous one, then starts a new step.
  void end_step();
  // Turns replay on or off (tests compare both in one process); off forgets the recorded step.
  void set_enabled(bool on);
  bool enabled() const { return enabled_; }
  // Waits for submitted segments (before the caller waits for the device to go idle, or frees memory).
  void wait_all();
  const ReplayStats& stats() const { return stats_; }

 private:
  struct Segment {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    size_t end = 0;  // commands [previous end, end)
    bool in_flight = false;
  };
  void run_deferred();
  void submit_segment();
  void capture();
  void drop();
  static bool same_steps(const std::vector<Command>& a, const std::vector<Command>& b);

  std::shared_ptr<VulkanContext> ctx_;
  const VulkanBuffer& position_reg_;
  Hooks hooks_;
  bool enabled_ = false;
  VkCommandPool pool_ = VK_NULL_HANDLE;

  std::vector<Command> step_, prev_;  // this step's commands so far, the previous complete step's
  bool tainted_ = false;              // this step cannot be captured (an upload inside it, a mismatch)
  bool matching_ = false;             // step_ is a prefix of recorded_ whose commands from done_ on wait
  size_t done_ = 0;                   // step_[0, done_) have been submitted or recorded
  size_t next_segment_ = 0;

  std::vector<Command> recorded_;  // the captured step
  std::vector<Segment> segments_;
  std::vector<uint32_t> slot_of_;  // per recorded command: its position slot (kSetPosition)
  std::unique_ptr<VulkanBuffer> slots_;
  ReplayStats stats_;
};

}  // namespace fkv
