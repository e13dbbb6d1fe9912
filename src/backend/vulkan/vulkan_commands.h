// Command recording: ops append dispatches, copies and uploads to a command buffer. After a batch of
// dispatches the buffer is submitted without waiting and recording goes on in the next of a few buffers, so
// the GPU starts on a forward pass while the host still records its end. The first batch after a flush is
// short (FKV_VULKAN_FIRST_BATCH, default 8 dispatches) and each next one twice as long, up to 64: the GPU
// waits for the host only until the first batch is recorded. flush() (download(),
// synchronize(), a full staging ring or descriptor pool) submits the rest and waits for everything.
//
// Barriers go only where data flows: the recorder remembers which buffers were written and read since the
// last barrier and inserts one before an access that would race (read-after-write, write-after-write,
// write-after-read). Independent ops (the q, k and v projections) run without barriers between them.
//
// Position-dependent shaders read the position from a device register (position_buffer()) that
// set_position() updates in stream order, so that a decode step's commands are the same at every position
// and DecodeReplay (vulkan_decode_replay.h) can run a repeated step from command buffers recorded once.
//
// FKV_VULKAN_PROFILE=1 (or set_profiling) times every dispatch with timestamp queries (vulkan_profile.h),
// FKV_VULKAN_PROFILE=phases every phase between barriers; the decode replay is off meanwhile, since its
// command buffers are recorded once and carry no queries. Off, the only cost is a null check per command
// buffer and dispatch.
#pragma once
#include <vulkan/vulkan.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "backend/vulkan/vulkan_context.h"
#include "backend/vulkan/vulkan_decode_replay.h"
#include "backend/vulkan/vulkan_fence_wait.h"
#include "backend/vulkan/vulkan_memory.h"
#include "backend/vulkan/vulkan_pipelines.h"
#include "backend/vulkan/vulkan_profile.h"

namespace fkv {

// One storage-buffer binding: [offset, offset + range) of buf. offset is a multiple of the device's
// binding alignment and range at most its max_binding().
struct Binding {
  const VulkanBuffer* buf = nullptr;
  VkDeviceSize offset = 0;
  VkDeviceSize range = 0;
  bool write = false;
};

class CommandRecorder {
 public:
  explicit CommandRecorder(std::shared_ptr<VulkanContext> ctx);
  ~CommandRecorder();
  CommandRecorder(const CommandRecorder&) = delete;
  CommandRecorder& operator=(const CommandRecorder&) = delete;

  void dispatch(const Pipeline& p, const std::vector<Binding>& bindings, const void* push,
                uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z);
  // A dispatch as data (checked against the pipeline and the device's limits), and its recording.
  Command make_dispatch(const Pipeline& p, const std::vector<Binding>& bindings, const void* push,
                        uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z) const;
  void record(const Command& c);
  // A command held back so that the next op may fuse with it (an add followed by the norm of its sum):
  // held() shows it, drop_held() forgets it (the caller recorded a fused command instead); any other call
  // records it first, so the order of commands is kept. hold_also() holds another command after those held
  // (up to three: the fused q/k/v matvec, then the RoPE of q and of K, so that the store of K and V fuses
  // them all); held() is then the last, held_before() the one before it, held_first() the first, and all
  // are recorded in order unless dropped. record_first_held() records the first alone, keeping the rest.
  void hold(const Command& c);
  void hold_also(const Command& c);
  const Command* held() const { return held_.empty() ? nullptr : &held_.back(); }
  const Command* held_before() const { return held_.size() < 2 ? nullptr : &held_[held_.size() - 2]; }
  const Command* held_first() const { return held_.empty() ? nullptr : &held_.front(); }
  size_t held_count() const { return held_.size(); }
  void record_first_held();
  void drop_held() { held_.clear(); }
  void copy(const VulkanBuffer& src, VkDeviceSize src_offset, const VulkanBuffer& dst,
            VkDeviceSize dst_offset, VkDeviceSize bytes);
  // Copies src into the staging ring now (the caller may reuse src at once) and records the transfer.
  void upload(const VulkanBuffer& dst, VkDeviceSize offset, const void* src, size_t bytes);
  // Runs everything recorded, then copies the bytes out through the readback buffer.
  void download(const VulkanBuffer& src, VkDeviceSize offset, void* dst, size_t bytes);
  // Submits what is recorded and waits for it; the end of a step for the decode replay.
  void flush();

  // A buffer range whose first `bytes` still lack a scale (the norm fold's output: vulkan_backend.cpp), and
  // the command that applies it in place. A later command that touches the range gets `fixup` recorded
  // before it, unless it only reads it and applies the scale itself (Command::applies_pending); download(),
  // upload() and copies the same. One range at a time: setting another records the fix-up of the one before.
  void set_pending(const Command::Ref& range, VkDeviceSize bytes, const Command& fixup);
  // Whether r is the pending range (same buffer, offset and size).
  bool pending_is(const Command::Ref& r) const;
  // Forgets the pending range without its fix-up when r is that range and a command the caller holds or
  // records next writes its first `bytes` whole, at least the pending ones, without reading them.
  void overwrite_pending(const Command::Ref& r, VkDeviceSize bytes);
  // Records the fix-up now, if a range is pending.
  void resolve_pending();

  // The position register (one uint32 at offset 0) and its update, recorded in stream order; nothing is
  // recorded when it already holds pos.
  const VulkanBuffer& position_buffer() const { return *position_; }
  void set_position(uint32_t pos);
  const ReplayStats& replay_stats() const { return replay_->stats(); }
  // Replay as asked, but never while profiling.
  void set_replay(bool on);

  // Starts (with fresh totals) or stops the GPU profile, after finishing what is recorded. Returns whether
  // profiling is on: false when the device has no timestamps (a line on stderr says so).
  bool set_profiling(bool on, VulkanProfileMode mode = VulkanProfileMode::kDispatches);
  bool profiling() const { return profiler_ != nullptr; }
  // Finishes what is recorded and returns the totals so far (empty when not profiling).
  VulkanProfile profile();
  // Writes the profile's table to stderr (after finishing what is recorded) when profiling.
  void print_profile();
  // The same at teardown, when dispatches were timed since the last print; never throws.
  void print_unreported_profile() noexcept;

 private:
  struct Slot {
    VkCommandPool pool = VK_NULL_HANDLE;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool in_flight = false;
  };
  void begin();
  void submit_current();  // without waiting
  void wait(Slot& slot);
  void release_held();
  void drain();                    // submits and waits for everything, without ending the step
  void submit(const Command& c);   // through the decode replay
  void guard_pending(const Command& c);  // the pending range's fix-up first, when c needs it
  static Command touching(const VulkanBuffer& b, VkDeviceSize offset, VkDeviceSize bytes, bool write);
  void execute(const Command& c);  // records c now
  static Command::Ref ref(const VulkanBuffer& b, VkDeviceSize offset, VkDeviceSize range, bool write);
  VkDescriptorSet allocate_set(const Pipeline& p);

  std::shared_ptr<VulkanContext> ctx_;
  std::array<Slot, 3> slots_;
  size_t current_ = 0;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;  // slots_[current_].cmd while recording
  uint32_t batch_ops_ = 0;
  uint32_t batch_limit_;  // dispatches of the batch being recorded: doubles from the first batch's up to 64
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;  // without VK_KHR_push_descriptor only
  bool recording_ = false;
  VkPipeline bound_ = VK_NULL_HANDLE;
  HazardTracker hazards_;
  std::unique_ptr<VulkanBuffer> staging_, readback_, position_;
  VkDeviceSize staging_head_ = 0;
  uint32_t position_value_ = 0;  // what the register holds once everything recorded so far has run
  bool position_known_ = false;
  std::unique_ptr<DecodeReplay> replay_;
  bool replay_wanted_ = false;  // set_replay's last word: replay resumes with it when profiling stops
  std::vector<Command> held_;   // at most three
  struct Pending {
    Command::Ref range;
    VkDeviceSize bytes;
    Command fixup;
  };
  std::optional<Pending> pending_;
  std::unique_ptr<GpuProfiler> profiler_;  // while profiling
  FenceWait step_wait_;                    // a download's wait for the step before it
};

}  // namespace fkv
