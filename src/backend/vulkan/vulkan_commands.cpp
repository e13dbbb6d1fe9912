#include "backend/vulkan/vulkan_commands.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/vulkan/vulkan_check.h"
#include "backend/vulkan/vulkan_env.h"
#include "util/error.h"

namespace fkv {
namespace {

constexpr VkDeviceSize kStagingBytes = VkDeviceSize(32) << 20;
constexpr VkDeviceSize kReadbackBytes = VkDeviceSize(32) << 20;
constexpr uint32_t kDescriptorSets = 4096;  // between flushes, without push descriptors
constexpr uint32_t kOpsPerSubmit = 64;      // dispatches per command buffer, at most

// Dispatches in the first command buffer after a flush. Eager steps (prefill; a split KV cache's decode
// steps before its middle is fitted, and at a refit) start on the GPU once it is submitted.
uint32_t first_batch() {
  static const uint32_t n = std::clamp<uint32_t>(env_count("FKV_VULKAN_FIRST_BATCH", 8), 1, kOpsPerSubmit);
  return n;
}

bool profile_requested_by_env() {
  const char* v = std::getenv("FKV_VULKAN_PROFILE");
  return v && *v && std::strcmp(v, "0") != 0 && std::strcmp(v, "off") != 0 && std::strcmp(v, "false") != 0;
}

VulkanProfileMode profile_mode_from_env() {
  const char* v = std::getenv("FKV_VULKAN_PROFILE");
  return v && std::strcmp(v, "phases") == 0 ? VulkanProfileMode::kPhases : VulkanProfileMode::kDispatches;
}

}  // namespace

CommandRecorder::CommandRecorder(std::shared_ptr<VulkanContext> ctx)
    : ctx_(std::move(ctx)),
      batch_limit_(first_batch()),
      // FKV_VULKAN_POLL_WAIT=0: blocking waits only (to compare).
      step_wait_(ctx_->properties().deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU &&
                 env_switch("FKV_VULKAN_POLL_WAIT", true)) {
  VkDevice dev = ctx_->device();
  for (Slot& slot : slots_) {
    VkCommandPoolCreateInfo pci{};
    pci.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pci.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
    pci.queueFamilyIndex = ctx_->queue_family();
    vk_check(vkCreateCommandPool(dev, &pci, nullptr, &slot.pool), "vkCreateCommandPool",
             "creating a command pool");
    slot.cmd = allocate_command_buffer(dev, slot.pool, "allocating a command buffer");
    slot.fence = create_fence(dev, "creating a submit fence");
  }
  if (!ctx_->push_descriptor_fn()) {
    VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kDescriptorSets * 6};
    VkDescriptorPoolCreateInfo dci{};
    dci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    dci.maxSets = kDescriptorSets;
    dci.poolSizeCount = 1;
    dci.pPoolSizes = &size;
    vk_check(vkCreateDescriptorPool(dev, &dci, nullptr, &descriptor_pool_), "vkCreateDescriptorPool",
             "creating the descriptor pool");
  }
  position_ = std::make_unique<VulkanBuffer>(ctx_, 256, MemoryKind::kDevice, "position register");
  DecodeReplay::Hooks hooks;
  hooks.run_eager = [this](const Command& c) { execute(c); };
  hooks.submit_eager = [this] { submit_current(); };
  hooks.forget_hazards = [this] { hazards_.forget(); };
  replay_ = std::make_unique<DecodeReplay>(ctx_, *position_, std::move(hooks));
  replay_wanted_ = replay_->enabled();
  if (profile_requested_by_env()) set_profiling(true, profile_mode_from_env());
}

CommandRecorder::~CommandRecorder() {
  VkDevice dev = ctx_->device();
  if (recording_) {
    // Nothing may be left half-recorded; submitting here could throw, so the work is dropped.
    vkEndCommandBuffer(cmd_);
  }
  vkQueueWaitIdle(ctx_->queue());
  profiler_.reset();
  if (descriptor_pool_) vkDestroyDescriptorPool(dev, descriptor_pool_, nullptr);
  for (Slot& slot : slots_) {
    vkDestroyFence(dev, slot.fence, nullptr);
    vkDestroyCommandPool(dev, slot.pool, nullptr);
  }
}

void CommandRecorder::wait(Slot& slot) {
  if (!slot.in_flight) return;
  wait_and_reset_fence(ctx_->device(), slot.fence, "waiting for the GPU");
  slot.in_flight = false;
  if (profiler_) profiler_->collect(size_t(&slot - slots_.data()));
  vk_check(vkResetCommandPool(ctx_->device(), slot.pool, 0), "vkResetCommandPool",
           "recycling a command buffer");
}

void CommandRecorder::begin() {
  if (recording_) return;
  Slot& slot = slots_[current_];
  wait(slot);
  VkCommandBufferBeginInfo bi{};
  bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk_check(vkBeginCommandBuffer(slot.cmd, &bi), "vkBeginCommandBuffer", "starting to record commands");
  if (profiler_) profiler_->begin(current_, slot.cmd);
  cmd_ = slot.cmd;
  recording_ = true;
  bound_ = VK_NULL_HANDLE;
  batch_ops_ = 0;
}

void CommandRecorder::submit_current() {
  if (!recording_) return;
  recording_ = false;
  Slot& slot = slots_[current_];
  if (profiler_) profiler_->end(current_, slot.cmd);
  vk_check(vkEndCommandBuffer(slot.cmd), "vkEndCommandBuffer", "finishing a command buffer");
  submit_command_buffer(ctx_->queue(), slot.cmd, slot.fence, "submitting recorded ops");
  slot.in_flight = true;
  current_ = (current_ + 1) % slots_.size();
}

Command::Ref CommandRecorder::ref(const VulkanBuffer& b, VkDeviceSize offset, VkDeviceSize range,
                                  bool write) {
  return Command::Ref{b.handle(), b.serial(), offset, range, write};
}

VkDescriptorSet CommandRecorder::allocate_set(const Pipeline& p) {
  VkDescriptorSetAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  ai.descriptorPool = descriptor_pool_;
  ai.descriptorSetCount = 1;
  ai.pSetLayouts = &p.set_layout;
  VkDescriptorSet set;
  VkResult r = vkAllocateDescriptorSets(ctx_->device(), &ai, &set);
  if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) {
    drain();  // resets the pool
    begin();
    r = vkAllocateDescriptorSets(ctx_->device(), &ai, &set);
  }
  vk_check(r, "vkAllocateDescriptorSets", "allocating a descriptor set");
  return set;
}

void CommandRecorder::dispatch(const Pipeline& p, const std::vector<Binding>& bindings, const void* push,
                               uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
  if (gx == 0 || gy == 0 || gz == 0) return;
  record(make_dispatch(p, bindings, push, push_bytes, gx, gy, gz));
}

Command CommandRecorder::make_dispatch(const Pipeline& p, const std::vector<Binding>& bindings,
                                       const void* push, uint32_t push_bytes, uint32_t gx, uint32_t gy,
                                       uint32_t gz) const {
  require(bindings.size() == p.n_bindings && bindings.size() <= kMaxCommandBindings &&
              push_bytes <= kPushConstantBytes,
          ErrorCode::kInternal, "dispatch does not match its pipeline's layout");
  const auto& lim = ctx_->properties().limits;
  require(gx <= lim.maxComputeWorkGroupCount[0] && gy <= lim.maxComputeWorkGroupCount[1] &&
              gz <= lim.maxComputeWorkGroupCount[2],
          ErrorCode::kInternal, "dispatch exceeds maxComputeWorkGroupCount");
  Command c;
  c.kind = Command::Kind::kDispatch;
  c.pipeline = &p;
  c.n_refs = uint32_t(bindings.size());
  for (size_t i = 0; i < bindings.size(); ++i) {
    const Binding& b = bindings[i];
    require(b.offset % ctx_->binding_alignment() == 0 && b.range > 0 && b.range <= ctx_->max_binding() &&
                b.offset + b.range <= b.buf->capacity(),
            ErrorCode::kInternal, "storage binding outside its buffer or the device's limits");
    c.refs[i] = ref(*b.buf, b.offset, b.range, b.write);
  }
  c.groups[0] = gx;
  c.groups[1] = gy;
  c.groups[2] = gz;
  c.push_bytes = push_bytes;
  if (push_bytes) std::memcpy(c.push, push, push_bytes);
  return c;
}

void CommandRecorder::record(const Command& c) {
  release_held();
  if (c.groups[0] == 0 || c.groups[1] == 0 || c.groups[2] == 0) return;
  submit(c);
}

void CommandRecorder::hold(const Command& c) {
  release_held();
  held_.push_back(c);
}

void CommandRecorder::hold_also(const Command& c) {
  require(!held_.empty() && held_.size() < 3, ErrorCode::kInternal, "hold_also: one or two commands must be held");
  held_.push_back(c);
}

void CommandRecorder::record_first_held() {
  if (held_.empty()) return;
  const Command first = held_.front();
  held_.erase(held_.begin());
  if (first.groups[0] && first.groups[1] && first.groups[2]) submit(first);
}

void CommandRecorder::release_held() {
  if (held_.empty()) return;
  std::vector<Command> held;
  held.swap(held_);
  for (const Command& c : held)
    if (c.groups[0] && c.groups[1] && c.groups[2]) submit(c);
  held.clear();
  held.swap(held_);  // keeps the capacity: nothing is allocated per token
}

void CommandRecorder::set_position(uint32_t pos) {
  // A held command that reads the register is recorded before the register changes; one that does not
  // (a held matvec) may stay held across the update, which it does not depend on.
  if (position_known_ && pos == position_value_) return;
  bool held_reads_position = false;
  for (const Command& c : held_)
    for (uint32_t r = 0; r < c.n_refs; ++r) held_reads_position |= c.refs[r].handle == position_->handle();
  if (held_reads_position) release_held();
  position_value_ = pos;
  position_known_ = true;
  Command c;
  c.kind = Command::Kind::kSetPosition;
  c.n_refs = 1;
  c.refs[0] = ref(*position_, 0, 4, true);
  c.position = pos;
  submit(c);
}

void CommandRecorder::submit(const Command& c) {
  guard_pending(c);
  if (!replay_->offer(c)) execute(c);
}

namespace {
bool overlaps(const Command::Ref& a, const Command::Ref& b) {
  return a.handle == b.handle && a.serial == b.serial && a.offset < b.offset + b.range &&
         b.offset < a.offset + a.range;
}
bool same_range(const Command::Ref& a, const Command::Ref& b) {
  return a.handle == b.handle && a.serial == b.serial && a.offset == b.offset && a.range == b.range;
}
}  // namespace

// A copy-like command that only names [offset, offset + bytes) of b (for guard_pending).
Command CommandRecorder::touching(const VulkanBuffer& b, VkDeviceSize offset, VkDeviceSize bytes,
                                  bool write) {
  Command c;
  c.kind = Command::Kind::kCopy;
  c.n_refs = 1;
  c.refs[0] = ref(b, offset, bytes, write);
  return c;
}

void CommandRecorder::set_pending(const Command::Ref& range, VkDeviceSize bytes, const Command& fixup) {
  resolve_pending();
  pending_ = Pending{range, bytes, fixup};
}

bool CommandRecorder::pending_is(const Command::Ref& r) const {
  return pending_ && same_range(pending_->range, r);
}

void CommandRecorder::overwrite_pending(const Command::Ref& r, VkDeviceSize bytes) {
  if (pending_is(r) && bytes >= pending_->bytes) pending_.reset();
}

void CommandRecorder::resolve_pending() {
  if (!pending_) return;
  const Command fixup = pending_->fixup;
  pending_.reset();
  submit(fixup);
}

void CommandRecorder::guard_pending(const Command& c) {
  if (!pending_) return;
  bool reads = false, writes = false;
  for (uint32_t i = 0; i < c.n_refs; ++i)
    if (overlaps(c.refs[i], pending_->range)) (c.refs[i].write ? writes : reads) = true;
  if (!reads && !writes) return;
  if (c.applies_pending && !writes) return;
  resolve_pending();
}

void CommandRecorder::execute(const Command& c) {
  const bool dispatch = c.kind == Command::Kind::kDispatch;
  VkDescriptorSet set = VK_NULL_HANDLE;
  if (dispatch && !ctx_->push_descriptor_fn()) set = allocate_set(*c.pipeline);
  begin();
  DispatchStamps stamps;
  if (profiler_) stamps = profiler_->command(current_, c, hazards_.has_hazard(c));
  emit_command(*ctx_, cmd_, c, hazards_, &bound_, set, position_->handle(), VK_NULL_HANDLE, 0, stamps);
  // Barriers order against everything earlier in submission order, so the hazard sets stay valid.
  if (dispatch && ++batch_ops_ >= batch_limit_) {
    submit_current();
    batch_limit_ = std::min(2 * batch_limit_, kOpsPerSubmit);
  }
}

void CommandRecorder::copy(const VulkanBuffer& src, VkDeviceSize so, const VulkanBuffer& dst,
                           VkDeviceSize dof, VkDeviceSize bytes) {
  release_held();
  if (bytes == 0) return;
  Command c;
  c.kind = Command::Kind::kCopy;
  c.n_refs = 2;
  c.refs[0] = ref(src, so, bytes, false);
  c.refs[1] = ref(dst, dof, bytes, true);
  submit(c);
}

void CommandRecorder::upload(const VulkanBuffer& dst, VkDeviceSize offset, const void* src, size_t bytes) {
  if (!staging_)
    staging_ = std::make_unique<VulkanBuffer>(ctx_, kStagingBytes, MemoryKind::kUpload, "staging ring");
  release_held();
  guard_pending(touching(dst, offset, bytes, true));
  replay_->host_write();
  const uint8_t* p = static_cast<const uint8_t*>(src);
  while (bytes > 0) {
    if (staging_head_ >= kStagingBytes) drain();  // everything staged so far has been consumed
    const size_t chunk = std::min<size_t>(bytes, kStagingBytes - staging_head_);
    std::memcpy(staging_->mapped() + staging_head_, p, chunk);
    Command c;  // recorded at once: the staging ring's bytes are no part of a replay
    c.kind = Command::Kind::kCopy;
    c.n_refs = 2;
    c.refs[0] = ref(*staging_, staging_head_, chunk, false);
    c.refs[1] = ref(dst, offset, chunk, true);
    execute(c);
    staging_head_ = (staging_head_ + chunk + 15) / 16 * 16;
    p += chunk;
    offset += chunk;
    bytes -= chunk;
  }
}

void CommandRecorder::download(const VulkanBuffer& src, VkDeviceSize offset, void* dst, size_t bytes) {
  if (!readback_)
    readback_ =
        std::make_unique<VulkanBuffer>(ctx_, kReadbackBytes, MemoryKind::kReadback, "readback buffer");
  release_held();
  guard_pending(touching(src, offset, bytes, false));
  replay_->end_step();
  uint8_t* out = static_cast<uint8_t*>(dst);
  while (bytes > 0) {
    const size_t chunk = std::min<size_t>(bytes, kReadbackBytes);
    Command c;
    c.kind = Command::Kind::kCopy;
    c.n_refs = 2;
    c.refs[0] = ref(src, offset, chunk, false);
    c.refs[1] = ref(*readback_, 0, chunk, true);
    execute(c);
    VkMemoryBarrier mb{};
    mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                         nullptr, 0, nullptr);
    // The copy's fence also covers everything submitted before it (replayed segments included), so the
    // waits in drain() then return at once.
    const size_t copy_slot = current_;
    submit_current();
    step_wait_.wait(ctx_->device(), slots_[copy_slot].fence, "waiting for the GPU");
    drain();
    std::memcpy(out, readback_->mapped(), chunk);
    out += chunk;
    offset += chunk;
    bytes -= chunk;
  }
}

void CommandRecorder::flush() {
  release_held();
  replay_->end_step();
  drain();
}

void CommandRecorder::drain() {
  submit_current();
  batch_limit_ = first_batch();
  for (Slot& slot : slots_) wait(slot);
  replay_->wait_all();
  if (descriptor_pool_)
    vk_check(vkResetDescriptorPool(ctx_->device(), descriptor_pool_, 0), "vkResetDescriptorPool",
             "recycling descriptor sets");
  hazards_.clear();
  staging_head_ = 0;
  // A pending range in a freed buffer has no reader left; its fix-up must not outlive the buffer.
  if (pending_ && ctx_->retired(pending_->range.handle)) pending_.reset();
  ctx_->collect_garbage();
}

void CommandRecorder::set_replay(bool on) {
  replay_wanted_ = on;
  replay_->set_enabled(on && !profiler_);
}

bool CommandRecorder::set_profiling(bool on, VulkanProfileMode mode) {
  flush();  // every slot idle: none holds commands recorded with or without the queries
  if (on) {
    profiler_.reset();
    profiler_ = GpuProfiler::create(ctx_, slots_.size(), kOpsPerSubmit, mode);
    if (profiler_) replay_->set_enabled(false);
  } else {
    profiler_.reset();
    replay_->set_enabled(replay_wanted_);
  }
  return profiler_ != nullptr;
}

VulkanProfile CommandRecorder::profile() {
  if (!profiler_) return {};
  flush();
  return profiler_->profile();
}

void CommandRecorder::print_profile() {
  if (!profiler_) return;
  const std::string table = format_gpu_profile(profile(), ctx_->device_name());
  std::fputs(table.c_str(), stderr);
  profiler_->mark_reported();
}

void CommandRecorder::print_unreported_profile() noexcept {
  try {
    if (!profiler_) return;
    flush();
    if (profiler_->unreported()) print_profile();
  } catch (...) {
    // Teardown after a device error: there is nothing trustworthy to print.
  }
}

}  // namespace fkv
