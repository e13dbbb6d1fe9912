#include "step_timer.h"

#include <cstdio>

namespace fkv::cuda {

StepTimer::StepTimer(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  if (cudaEventCreate(&begin_) != cudaSuccess || cudaEventCreate(&launched_) != cudaSuccess ||
      cudaEventCreate(&copied_) != cudaSuccess) {
    (void)cudaGetLastError();
    enabled_ = false;  // diagnostics only: never fail the backend over them
  }
}

StepTimer::~StepTimer() {
  if (steps_ > 0)
    std::fprintf(stderr,
                 "cuda step stats: %d replayed steps, per step: wall %.1f us = host %.1f us (sampling, the next "
                 "step's start) + GPU %.1f us (the step) + read-back %.1f us + rest %.1f us\n",
                 steps_, 1e3 * wall_ms_ / steps_, 1e3 * host_ms_ / steps_, 1e3 * gpu_ms_ / steps_,
                 1e3 * copy_ms_ / steps_, 1e3 * (wall_ms_ - host_ms_ - gpu_ms_ - copy_ms_) / steps_);
  for (cudaEvent_t e : {begin_, launched_, copied_})
    if (e) (void)cudaEventDestroy(e);
}

void StepTimer::at_begin(cudaStream_t s) {
  if (!enabled_) return;
  begin_time_ = Clock::now();
  (void)cudaEventRecord(begin_, s);
  begun_ = true;
}

void StepTimer::at_download(cudaStream_t s) {
  if (enabled_ && !begun_) at_begin(s);
}

void StepTimer::after_launch(cudaStream_t s) {
  if (enabled_) (void)cudaEventRecord(launched_, s);
}

void StepTimer::after_copy(cudaStream_t s) {
  if (enabled_) (void)cudaEventRecord(copied_, s);
}

void StepTimer::at_return(bool replayed) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  float gpu = 0, copy = 0;
  const bool timed = cudaEventElapsedTime(&gpu, begin_, launched_) == cudaSuccess &&
                     cudaEventElapsedTime(&copy, launched_, copied_) == cudaSuccess;
  (void)cudaGetLastError();
  // A step counts when it replayed and the one before it also ended in a download (the host part is known).
  if (replayed && timed && have_last_) {
    ++steps_;
    gpu_ms_ += gpu;
    copy_ms_ += copy;
    host_ms_ += std::chrono::duration<double, std::milli>(begin_time_ - last_return_).count();
    wall_ms_ += std::chrono::duration<double, std::milli>(now - last_return_).count();
  }
  last_return_ = now;
  have_last_ = true;
  begun_ = false;
}

}  // namespace fkv::cuda
