// Replaying a decode step as one CUDA graph.
//
// The engine issues a step's ops one by one (hundreds of small launches per token, whose launch gaps cost a
// large share of decode time). This recorder watches the ops between two synchronization points (download,
// synchronize): when two consecutive steps issue the same ops on the same buffers, differing only in pos0,
// it captures that sequence into a graph whose position-dependent kernels read pos0 from a device scalar.
// From then on, a step whose ops keep matching the graph is deferred op by op and launched as one graph at
// the synchronization point; the first op that does not match makes the deferred ops run one by one, so
// the result is always that of eager execution.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <vector>

#include "cuda_op.h"

namespace fkv::cuda {

class DecodeGraph {
 public:
  // run(ops, count, capturing): launches the kernels of ops[0] on the stream and returns 1; with capturing,
  // position-dependent kernels read pos0 from pos0_device(), attention sizes its splits for the whole cache,
  // and the runner may fuse ops[0] with the ops after it (of the count given), returning how many it ran.
  using Runner = std::function<size_t(const Op* ops, size_t count, bool capturing)>;
  // early: begin_step's promise may launch the graph at a step's first op (FKV_CUDA_EARLY_REPLAY).
  DecodeGraph(cudaStream_t stream, Runner run, bool enabled, bool early);
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // An op that may take part in a graph (one token, the ops of a decode step).
  void submit(const Op& op, size_t scratch_generation);
  // An op or call that must run now and ends any graph candidate of this step (prefill, upload, copy...).
  void barrier();
  // The host is about to write device memory (upload). Before a step's first op this is the step's input
  // (the token id) and changes nothing; within a step, the deferred ops must run first.
  void host_write();
  // A synchronization point: launches the graph when the whole step matched, then starts a new step.
  void end_step(size_t scratch_generation);
  // Backend::begin_step's promise for the step now starting (its activations are written before they are
  // read): the graph may be launched at the step's first op when that op matches the graph's first, so the
  // GPU runs while the host issues the rest. Ops that then stop matching run eagerly after the launched
  // graph, from the step's first op on, which gives the eager result because of the promise (graphs of
  // split-cache ops, whose appends change state, are never launched early).
  void begin_step(int pos0);

  const int* pos0_device() const { return pos0_dev_; }
  int replays() const { return replays_; }
  int early_launches() const { return early_launches_; }

 private:
  void launch(int pos0);
  void flush();  // runs the deferred ops eagerly
  void capture(size_t scratch_generation);
  void drop();
  static bool same_steps(const std::vector<Op>& a, const std::vector<Op>& b);

  cudaStream_t stream_;
  Runner run_;
  bool enabled_;
  int* pos0_dev_ = nullptr;
  int* pos0_host_ = nullptr;  // pinned, the source of the copy before each replay

  std::vector<Op> step_, prev_;  // this step's ops so far, the previous complete step's
  bool tainted_ = false;         // this step had an op that cannot be replayed
  size_t deferred_ = 0;          // step_[0, deferred_) matched the graph and have not run yet
  int step_pos0_ = -1;

  bool early_;                // false: the graph is launched at the step's end only
  int promised_pos0_ = -1;    // begin_step's position for the step now starting, or -1
  bool launched_ = false;     // this step's graph is already launched (early)
  bool early_safe_ = false;   // the graph may be launched early (no split-cache ops)

  std::vector<Op> graph_ops_;
  cudaGraphExec_t exec_ = nullptr;
  size_t graph_generation_ = 0;
  int replays_ = 0;
  int early_launches_ = 0;
};

}  // namespace fkv::cuda
