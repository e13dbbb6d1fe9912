#include "backend/vulkan/vulkan_decode_replay.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/vulkan/vulkan_check.h"
#include "backend/vulkan/vulkan_env.h"
#include "util/error.h"

namespace fkv {
namespace {

// Commands per segment: the first is short so that the GPU starts soon after the step does; later ones
// grow, since by then the host (matching, not recording) runs far ahead of the GPU. 4 rather than 32: the
// GPU idled ~100 us a token longer while the host matched 32 commands (H100, 8B shape; docs/VULKAN.md).
// FKV_VULKAN_FIRST_SEGMENT overrides it.
const size_t kFirstSegment = env_count("FKV_VULKAN_FIRST_SEGMENT", 4);

bool replay_enabled_by_env() {
  const char* v = std::getenv("FKV_VULKAN_REPLAY");
  if (!v || !*v) return true;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

}  // namespace

bool Command::same_as(const Command& o) const {
  if (kind != o.kind || pipeline != o.pipeline || n_refs != o.n_refs || push_bytes != o.push_bytes ||
      groups[0] != o.groups[0] || groups[1] != o.groups[1] || groups[2] != o.groups[2])
    return false;
  for (uint32_t i = 0; i < n_refs; ++i) {
    const Ref &a = refs[i], &b = o.refs[i];
    if (a.handle != b.handle || a.serial != b.serial || a.offset != b.offset || a.range != b.range ||
        a.write != b.write)
      return false;
  }
  return std::memcmp(push, o.push, push_bytes) == 0;  // position: a replay's slot supplies it
}

bool HazardTracker::has_hazard(const Command& c) const {
  bool hazard = unknown_;
  for (uint32_t i = 0; i < c.n_refs && !hazard; ++i) {
    const Command::Ref& r = c.refs[i];
    hazard = written_.count(r.handle) || (r.write && read_.count(r.handle));
  }
  return hazard;
}

bool HazardTracker::needs_barrier(const Command& c) {
  const bool hazard = has_hazard(c);
  if (hazard) clear();
  for (uint32_t i = 0; i < c.n_refs; ++i) (c.refs[i].write ? written_ : read_).insert(c.refs[i].handle);
  return hazard;
}

void HazardTracker::clear() {
  written_.clear();
  read_.clear();
  unknown_ = false;
}

void emit_barrier(VkCommandBuffer cmd) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(cmd, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

bool emit_command(const VulkanContext& ctx, VkCommandBuffer cmd, const Command& c, HazardTracker& hazards,
                  VkPipeline* bound, VkDescriptorSet set, VkBuffer position_reg, VkBuffer slots,
                  uint32_t slot, DispatchStamps stamps) {
  const bool barrier = hazards.needs_barrier(c);
  if (barrier) emit_barrier(cmd);
  // Bottom of pipe: written once everything before it has finished, the phase before this barrier.
  if (stamps.pool && stamps.phase)
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, stamps.pool, stamps.first);
  switch (c.kind) {
    case Command::Kind::kDispatch: {
      const Pipeline& p = *c.pipeline;
      VkDescriptorBufferInfo infos[kMaxCommandBindings];
      VkWriteDescriptorSet writes[kMaxCommandBindings];
      for (uint32_t i = 0; i < c.n_refs; ++i) {
        infos[i] = {c.refs[i].handle, c.refs[i].offset, c.refs[i].range};
        writes[i] = {};
        writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
        writes[i].dstSet = set;
        writes[i].dstBinding = i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
      }
      if (*bound != p.pipeline) {
        vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
        *bound = p.pipeline;
      }
      if (ctx.push_descriptor_fn()) {
        ctx.push_descriptor_fn()(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, c.n_refs, writes);
      } else {
        vkUpdateDescriptorSets(ctx.device(), c.n_refs, writes, 0, nullptr);
        vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
      }
      if (c.push_bytes)
        vkCmdPushConstants(cmd, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, c.push_bytes, c.push);
      if (stamps.pool && !stamps.phase) {
        // Compute stage: each stamp waits for the compute work before it, so a dispatch's time excludes its
        // barrier and anything still running from earlier dispatches.
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, stamps.pool, stamps.first);
        vkCmdDispatch(cmd, c.groups[0], c.groups[1], c.groups[2]);
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, stamps.pool, stamps.first + 1);
      } else {
        vkCmdDispatch(cmd, c.groups[0], c.groups[1], c.groups[2]);
      }
      break;
    }
    case Command::Kind::kCopy: {
      const VkBufferCopy region{c.refs[0].offset, c.refs[1].offset, c.refs[0].range};
      vkCmdCopyBuffer(cmd, c.refs[0].handle, c.refs[1].handle, 1, &region);
      break;
    }
    case Command::Kind::kSetPosition:
      if (slots) {
        const VkBufferCopy region{VkDeviceSize(slot) * 4, 0, 4};
        vkCmdCopyBuffer(cmd, slots, position_reg, 1, &region);
      } else {
        vkCmdUpdateBuffer(cmd, position_reg, 0, 4, &c.position);
      }
      break;
  }
  return barrier;
}

DecodeReplay::DecodeReplay(std::shared_ptr<VulkanContext> ctx, const VulkanBuffer& position_reg, Hooks hooks)
    : ctx_(std::move(ctx)), position_reg_(position_reg), hooks_(std::move(hooks)) {
  if (!ctx_->push_descriptor_fn()) return;
  enabled_ = replay_enabled_by_env();
  VkCommandPoolCreateInfo pci{};
  pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pci.queueFamilyIndex = ctx_->queue_family();
  vk_check(vkCreateCommandPool(ctx_->device(), &pci, nullptr, &pool_), "vkCreateCommandPool",
           "creating the decode replay's command pool");
}

DecodeReplay::~DecodeReplay() {
  try {
    drop();
  } catch (...) {
    // A failed wait while tearing down: the device is lost, nothing left to protect.
  }
  if (pool_) vkDestroyCommandPool(ctx_->device(), pool_, nullptr);
}

bool DecodeReplay::same_steps(const std::vector<Command>& a, const std::vector<Command>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (!a[k].same_as(b[k])) return false;
  return true;
}

bool DecodeReplay::offer(const Command& c) {
  if (!enabled_) return false;
  if (matching_ && step_.size() < recorded_.size() && c.same_as(recorded_[step_.size()])) {
    step_.push_back(c);
    if (step_.size() == segments_[next_segment_].end) submit_segment();
    return true;
  }
  run_deferred();
  step_.push_back(c);
  done_ = step_.size();  // the caller records it now
  return false;
}

void DecodeReplay::run_deferred() {
  if (!matching_) return;
  matching_ = false;
  const size_t from = done_;
  done_ = step_.size();  // before running: a throwing command must not leave them to run twice
  for (size_t k = from; k < step_.size(); ++k) hooks_.run_eager(step_[k]);
}

void DecodeReplay::submit_segment() {
  Segment& s = segments_[next_segment_];
  for (size_t k = done_; k < s.end; ++k)
    if (recorded_[k].kind == Command::Kind::kSetPosition)
      std::memcpy(slots_->mapped() + size_t(slot_of_[k]) * 4, &step_[k].position, 4);
  hooks_.submit_eager();  // what precedes the step (its input upload) runs first
  if (s.in_flight) wait_and_reset_fence(ctx_->device(), s.fence, "waiting for a replayed segment");
  submit_command_buffer(ctx_->queue(), s.cmd, s.fence, "replaying a decode step");
  s.in_flight = true;
  done_ = s.end;
  ++next_segment_;
  hooks_.forget_hazards();  // the eager stream continues after commands its tracker did not see
}

void DecodeReplay::host_write() {
  if (enabled_ && !step_.empty()) barrier();
}

void DecodeReplay::barrier() {
  if (!enabled_) return;
  run_deferred();
  tainted_ = true;
}

void DecodeReplay::end_step() {
  if (!enabled_) return;
  if (matching_ && step_.size() == recorded_.size() && done_ == step_.size()) {
    ++stats_.replays;
  } else {
    run_deferred();
    if (!tainted_ && !step_.empty() && !(!recorded_.empty() && same_steps(step_, recorded_)) &&
        same_steps(step_, prev_))
      capture();
  }
  if (tainted_) {
    prev_.clear();
  } else if (!step_.empty()) {  // a second readback in a row does not part two repeated steps
    prev_.swap(step_);
  }
  step_.clear();
  tainted_ = false;
  done_ = 0;
  next_segment_ = 0;
  matching_ = !recorded_.empty();
}

void DecodeReplay::set_enabled(bool on) {
  if (!on && enabled_) {
    run_deferred();
    drop();
    step_.clear();
    prev_.clear();
    tainted_ = false;
    done_ = 0;
    next_segment_ = 0;
  }
  enabled_ = on && pool_ != VK_NULL_HANDLE;
}

void DecodeReplay::wait_all() {
  for (Segment& s : segments_) {
    if (!s.in_flight) continue;
    wait_and_reset_fence(ctx_->device(), s.fence, "waiting for a replayed segment");
    s.in_flight = false;
  }
}

void DecodeReplay::drop() {
  wait_all();
  VkDevice dev = ctx_->device();
  for (Segment& s : segments_) {
    if (s.cmd) vkFreeCommandBuffers(dev, pool_, 1, &s.cmd);
    if (s.fence) vkDestroyFence(dev, s.fence, nullptr);
  }
  segments_.clear();
  recorded_.clear();
  slot_of_.clear();
  matching_ = false;
  stats_.commands = stats_.dispatches = stats_.barriers = stats_.segments = 0;
}

void DecodeReplay::capture() {
  drop();
  recorded_ = step_;
  // Position slots, one per update.
  slot_of_.assign(recorded_.size(), 0);
  uint32_t n_slots = 0;
  for (size_t k = 0; k < recorded_.size(); ++k)
    if (recorded_[k].kind == Command::Kind::kSetPosition) slot_of_[k] = n_slots++;
  if (!slots_ || slots_->capacity() < VkDeviceSize(std::max(n_slots, 1u)) * 4)
    slots_ = std::make_unique<VulkanBuffer>(ctx_, std::max<size_t>(size_t(n_slots) * 4, 256),
                                            MemoryKind::kUpload, "decode replay position slots");
  // Segment bounds: kFirstSegment commands, then doubling.
  for (size_t begin = 0, len = kFirstSegment; begin < recorded_.size(); begin += len, len *= 2)
    segments_.push_back(Segment{VK_NULL_HANDLE, VK_NULL_HANDLE, std::min(recorded_.size(), begin + len)});

  VkDevice dev = ctx_->device();
  HazardTracker hazards;
  size_t k = 0;
  for (Segment& s : segments_) {
    s.cmd = allocate_command_buffer(dev, pool_, "allocating a decode replay command buffer");
    s.fence = create_fence(dev, "creating a replay fence");
    VkCommandBufferBeginInfo bi{};
    bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;  // no ONE_TIME_SUBMIT: submitted every step
    vk_check(vkBeginCommandBuffer(s.cmd, &bi), "vkBeginCommandBuffer", "recording the decode replay");
    if (k == 0) {
      // Orders the step after whatever the eager stream submitted before it (its input upload).
      emit_barrier(s.cmd);
      ++stats_.barriers;
    }
    VkPipeline bound = VK_NULL_HANDLE;
    for (; k < s.end; ++k) {
      const Command& c = recorded_[k];
      stats_.barriers += emit_command(*ctx_, s.cmd, c, hazards, &bound, VK_NULL_HANDLE,
                                      position_reg_.handle(), slots_->handle(), slot_of_[k]);
      stats_.dispatches += c.kind == Command::Kind::kDispatch;
    }
    vk_check(vkEndCommandBuffer(s.cmd), "vkEndCommandBuffer", "recording the decode replay");
  }
  stats_.commands = uint32_t(recorded_.size());
  stats_.segments = uint32_t(segments_.size());
}

}  // namespace fkv
