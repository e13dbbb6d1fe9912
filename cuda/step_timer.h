// Where a decode token's wall time goes (FKV_CUDA_STEP_STATS=1): between two downloads, how long the GPU ran
// the step (events around the work the download launches: the replayed graph, or nothing when the step ran
// eagerly), how long the read-back took, and how long the host took from one download's return to the
// next download's call (the engine recording ops, the caller's sampling). The GPU is idle for the host part
// of a replayed step. Printed on stderr when the backend is destroyed; off by default (events cost a little).
#pragma once
#include <cuda_runtime.h>

#include <chrono>

namespace fkv::cuda {

class StepTimer {
 public:
  explicit StepTimer(bool enabled);
  ~StepTimer();
  StepTimer(const StepTimer&) = delete;
  StepTimer& operator=(const StepTimer&) = delete;

  bool enabled() const { return enabled_; }
  // Around a download: before the step's work is launched, after it, after the copy is queued, and once the
  // stream synchronized. replayed: the step ran as one graph launch (only those steps are counted).
  void at_call(cudaStream_t s);
  void after_launch(cudaStream_t s);
  void after_copy(cudaStream_t s);
  void at_return(bool replayed);

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  cudaEvent_t call_ = nullptr, launched_ = nullptr, copied_ = nullptr;
  Clock::time_point call_time_{}, last_return_{};
  bool have_last_ = false;
  int steps_ = 0;
  double gpu_ms_ = 0, copy_ms_ = 0, host_ms_ = 0, wall_ms_ = 0;
};

}  // namespace fkv::cuda
