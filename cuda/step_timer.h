// Where a decode token's wall time goes (FKV_CUDA_STEP_STATS=1), per replayed step: the host's part, from
// one read-back's return to the step's start (the caller sampling the last token, the engine uploading the
// next; the GPU idles meanwhile), the GPU's (from the step's start to the end of its work: the replayed
// graph, launched at the step's first op or at the download), the read-back, and the rest (the host issuing
// ops the GPU did not wait for, waking up). A step starts at Backend::begin_step, else at the download call.
// Printed on stderr when the backend is destroyed; off by default (events cost a little).
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

  // The step's start: begin_step, or the download when no begin_step came since the last read-back.
  void at_begin(cudaStream_t s);
  void at_download(cudaStream_t s);
  // After the step's work is queued (before its read-back), after the read-back is queued, and once it is
  // done. replayed: the step ran as one graph launch (only those steps are counted).
  void after_launch(cudaStream_t s);
  void after_copy(cudaStream_t s);
  void at_return(bool replayed);

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  cudaEvent_t begin_ = nullptr, launched_ = nullptr, copied_ = nullptr;
  Clock::time_point begin_time_{}, last_return_{};
  bool begun_ = false, have_last_ = false;
  int steps_ = 0;
  double gpu_ms_ = 0, copy_ms_ = 0, host_ms_ = 0, wall_ms_ = 0;
};

}  // namespace fkv::cuda
