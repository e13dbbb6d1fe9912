#include "backend/vulkan/vulkan_profile.h"

#include <algorithm>
#include <cstdio>

#include "backend/vulkan/vulkan_check.h"

namespace fkv {

std::unique_ptr<GpuProfiler> GpuProfiler::create(std::shared_ptr<VulkanContext> ctx, size_t slots,
                                                 uint32_t dispatches_per_slot, VulkanProfileMode mode) {
  if (ctx->timestamp_valid_bits() == 0 || ctx->timestamp_period_ns() <= 0) {
    std::fprintf(stderr,
                 "fkv: FKV_VULKAN_PROFILE: %s has no timestamp queries on its compute queue "
                 "(timestampValidBits %u, timestampComputeAndGraphics %u); running without the GPU profile\n",
                 ctx->device_name().c_str(), ctx->timestamp_valid_bits(),
                 unsigned(ctx->properties().limits.timestampComputeAndGraphics));
    return nullptr;
  }
  return std::unique_ptr<GpuProfiler>(new GpuProfiler(std::move(ctx), slots, dispatches_per_slot, mode));
}

GpuProfiler::GpuProfiler(std::shared_ptr<VulkanContext> ctx, size_t slots, uint32_t dispatches_per_slot,
                         VulkanProfileMode mode)
    : ctx_(std::move(ctx)), mode_(mode), slots_(slots), capacity_(2 + 2 * dispatches_per_slot) {
  const uint32_t bits = ctx_->timestamp_valid_bits();
  if (bits < 64) mask_ = (uint64_t(1) << bits) - 1;
  us_per_tick_ = double(ctx_->timestamp_period_ns()) / 1000.0;
  results_.resize(capacity_);
  try {
    for (Slot& s : slots_) {
      VkQueryPoolCreateInfo ci{};
      ci.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
      ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
      ci.queryCount = capacity_;
      vk_check(vkCreateQueryPool(ctx_->device(), &ci, nullptr, &s.pool), "vkCreateQueryPool",
               "creating the GPU profile's timestamp queries");
      s.pipelines.reserve(dispatches_per_slot);
    }
  } catch (...) {
    for (Slot& s : slots_)
      if (s.pool) vkDestroyQueryPool(ctx_->device(), s.pool, nullptr);
    throw;
  }
}

GpuProfiler::~GpuProfiler() {
  for (Slot& s : slots_) vkDestroyQueryPool(ctx_->device(), s.pool, nullptr);
}

void GpuProfiler::begin(size_t slot, VkCommandBuffer cmd) {
  Slot& s = slots_[slot];
  vkCmdResetQueryPool(cmd, s.pool, 0, capacity_);
  vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s.pool, 0);
  s.used = 1;
  s.pipelines.clear();
  s.phases.assign(1, Phase{});
  s.recorded = true;
}

DispatchStamps GpuProfiler::command(size_t slot, const Command& c, bool barrier) {
  Slot& s = slots_[slot];
  const bool dispatch = c.kind == Command::Kind::kDispatch;
  if (mode_ == VulkanProfileMode::kDispatches) {
    if (!dispatch) return {};
    if (s.used + 3 > capacity_) {  // two for the dispatch, one left for the end stamp
      ++untimed_;
      return {};
    }
    s.pipelines.push_back(c.pipeline);
    const DispatchStamps stamps{s.pool, s.used, false};
    s.used += 2;
    return stamps;
  }
  DispatchStamps stamps;
  // A barrier before the command buffer's first command ends no phase of this buffer: not stamped.
  if (barrier && !s.phases.back().names.empty()) {
    if (s.used + 2 > capacity_) {  // one left for the end stamp: the phase goes on
      ++untimed_;
    } else {
      stamps = {s.pool, s.used, true};
      ++s.used;
      s.phases.emplace_back();
    }
  }
  Phase& ph = s.phases.back();
  const std::string name = dispatch                         ? c.pipeline->name
                           : c.kind == Command::Kind::kCopy ? std::string("copy")
                                                            : std::string("position");
  if (std::find(ph.names.begin(), ph.names.end(), name) == ph.names.end()) ph.names.push_back(name);
  if (dispatch) ++ph.dispatches;
  return stamps;
}

void GpuProfiler::end(size_t slot, VkCommandBuffer cmd) {
  Slot& s = slots_[slot];
  vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s.pool, s.used);
  ++s.used;
}

void GpuProfiler::collect(size_t slot) {
  Slot& s = slots_[slot];
  if (!s.recorded) return;
  s.recorded = false;
  // The fence has signalled, so every query written is available; WAIT only guards against a driver
  // that makes results visible late.
  vk_check(
      vkGetQueryPoolResults(ctx_->device(), s.pool, 0, s.used, s.used * sizeof(uint64_t), results_.data(),
                            sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
      "vkGetQueryPoolResults", "reading the GPU profile's timestamps");
  for (size_t k = 0; k < s.pipelines.size(); ++k) {
    const uint64_t t = ticks(results_[1 + 2 * k], results_[2 + 2 * k]);
    Total& total = totals_[s.pipelines[k]->name];
    ++total.calls;
    ++total.dispatches;
    total.ticks += t;
    dispatch_ticks_ += t;
    ++dispatches_;
  }
  for (size_t k = 0; k < s.phases.size(); ++k) {  // phase mode (empty otherwise)
    const Phase& ph = s.phases[k];
    if (ph.names.empty()) continue;  // a command buffer without commands
    std::string name;
    for (const std::string& n : ph.names) name += (name.empty() ? "" : " + ") + n;
    const uint64_t t = ticks(results_[k], results_[k + 1]);
    Total& total = totals_[name];
    ++total.calls;
    total.dispatches += ph.dispatches;
    total.ticks += t;
    dispatch_ticks_ += t;
    dispatches_ += ph.dispatches;
  }
  intervals_.emplace_back(results_[0] & mask_, results_[s.used - 1] & mask_);
}

VulkanProfile GpuProfiler::profile() const {
  VulkanProfile p;
  p.on = true;
  p.mode = mode_;
  for (const auto& [name, t] : totals_)
    p.shaders.push_back({name, t.calls, t.dispatches, double(t.ticks) * us_per_tick_});
  std::stable_sort(
      p.shaders.begin(), p.shaders.end(),
      [](const VulkanShaderTime& a, const VulkanShaderTime& b) { return a.total_us > b.total_us; });
  p.dispatches = dispatches_;
  p.untimed = untimed_;
  p.command_buffers = intervals_.size();
  p.dispatch_us = double(dispatch_ticks_) * us_per_tick_;
  // Command buffers of the ring may overlap on the GPU (no semaphores between them): merge the intervals.
  std::vector<std::pair<uint64_t, uint64_t>> iv = intervals_;
  std::sort(iv.begin(), iv.end());
  uint64_t busy = 0;
  for (size_t i = 0; i < iv.size();) {
    uint64_t start = iv[i].first, end = std::max(iv[i].first, iv[i].second);
    for (++i; i < iv.size() && iv[i].first <= end; ++i) end = std::max(end, iv[i].second);
    busy += end - start;
  }
  p.busy_us = double(busy) * us_per_tick_;
  if (!iv.empty()) {
    uint64_t last = 0;
    for (const auto& v : iv) last = std::max(last, v.second);
    p.span_us = double(last - std::min(last, iv.front().first)) * us_per_tick_;
  }
  return p;
}

namespace {

// A row's numbers: calls (phase mode: phases, then their dispatches), total ms, mean us, share.
std::string row_numbers(const VulkanShaderTime& s, const VulkanProfile& p, bool phases) {
  char line[128];
  char calls[48];
  if (phases)
    std::snprintf(calls, sizeof calls, "%10llu %10llu", static_cast<unsigned long long>(s.calls),
                  static_cast<unsigned long long>(s.dispatches));
  else
    std::snprintf(calls, sizeof calls, "%10llu", static_cast<unsigned long long>(s.calls));
  std::snprintf(line, sizeof line, "%s %12.3f %12.2f %6.1f%%", calls, s.total_us / 1000.0,
                s.calls ? s.total_us / double(s.calls) : 0.0,
                p.dispatch_us > 0 ? 100.0 * s.total_us / p.dispatch_us : 0.0);
  return line;
}

}  // namespace

std::string format_gpu_profile(const VulkanProfile& p, const std::string& device) {
  const bool phases = p.mode == VulkanProfileMode::kPhases;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "fkv: Vulkan GPU profile%s, %s (decode replay off while profiling)\n",
                phases ? " by phase (between barriers, as they run)" : "", device.c_str());
  out += line;
  // Phase mode puts the name last: it lists every shader of the phase.
  if (phases)
    std::snprintf(line, sizeof line, "%10s %10s %12s %12s %7s  %s\n", "phases", "dispatches", "total ms",
                  "mean us", "share", "phase");
  else
    std::snprintf(line, sizeof line, "%-24s %10s %12s %12s %7s\n", "shader", "calls", "total ms", "mean us",
                  "share");
  out += line;
  uint64_t rows = 0;
  for (const VulkanShaderTime& s : p.shaders) {
    rows += s.calls;
    if (phases) {
      out += row_numbers(s, p, true) + "  " + s.name + "\n";
    } else {
      std::snprintf(line, sizeof line, "%-24s ", s.name.c_str());
      out += line + row_numbers(s, p, false) + "\n";
    }
  }
  const double host_wait_ms = std::max(0.0, p.span_us - p.busy_us) / 1000.0;
  if (phases) {
    std::snprintf(line, sizeof line,
                  "phases %llu (%llu dispatches): %.3f ms; command buffers %llu busy %.3f ms; span first to "
                  "last timestamp %.3f ms (GPU waiting for the host %.3f ms)\n",
                  static_cast<unsigned long long>(rows), static_cast<unsigned long long>(p.dispatches),
                  p.dispatch_us / 1000.0, static_cast<unsigned long long>(p.command_buffers),
                  p.busy_us / 1000.0, p.span_us / 1000.0, host_wait_ms);
    out += line;
  } else {
    const double gap = std::max(0.0, p.busy_us - p.dispatch_us);
    std::snprintf(line, sizeof line,
                  "dispatches %llu: %.3f ms; command buffers %llu busy %.3f ms; gap %.3f ms (%.1f%% of busy: "
                  "barriers, copies, launches)\n",
                  static_cast<unsigned long long>(p.dispatches), p.dispatch_us / 1000.0,
                  static_cast<unsigned long long>(p.command_buffers), p.busy_us / 1000.0, gap / 1000.0,
                  p.busy_us > 0 ? 100.0 * gap / p.busy_us : 0.0);
    out += line;
    std::snprintf(line, sizeof line,
                  "span first to last timestamp %.3f ms (dispatches %.1f%% of it; GPU waiting for the host "
                  "%.3f ms)\n",
                  p.span_us / 1000.0, p.span_us > 0 ? 100.0 * p.dispatch_us / p.span_us : 0.0, host_wait_ms);
    out += line;
  }
  if (p.untimed) {
    std::snprintf(line, sizeof line, "%s (a command buffer's queries used up): %llu\n",
                  phases ? "barriers not stamped" : "untimed dispatches",
                  static_cast<unsigned long long>(p.untimed));
    out += line;
  }
  return out;
}

}  // namespace fkv
