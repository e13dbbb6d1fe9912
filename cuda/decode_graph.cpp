#include "decode_graph.h"

#include "cuda_check.h"

namespace fkv::cuda {

DecodeGraph::DecodeGraph(cudaStream_t stream, Runner run, bool enabled, bool early)
    : stream_(stream), run_(std::move(run)), enabled_(enabled), early_(early) {
  if (!enabled_) return;
  FKV_CUDA_CHECK(cudaMalloc(&pos0_dev_, sizeof(int)), "allocating the decode graph's position scalar");
  FKV_CUDA_CHECK(cudaMallocHost(&pos0_host_, sizeof(int)), "allocating the decode graph's pinned position");
}

DecodeGraph::~DecodeGraph() {
  drop();
  (void)cudaFree(pos0_dev_);
  (void)cudaFreeHost(pos0_host_);
}

bool DecodeGraph::same_steps(const std::vector<Op>& a, const std::vector<Op>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (!a[k].same_as(b[k])) return false;
  return true;
}

void DecodeGraph::submit(const Op& op, size_t generation) {
  if (!enabled_) {
    run_(&op, 1, false);
    return;
  }
  if (step_.empty() && !launched_ && promised_pos0_ >= 0 && early_ && early_safe_ && exec_ && !tainted_ &&
      generation == graph_generation_ && op.same_as(graph_ops_[0])) {
    step_pos0_ = promised_pos0_;  // an op at another position then stops the match (tainted below)
    launch(promised_pos0_);
    launched_ = true;
    ++early_launches_;
  }
  if (op.uses_pos) {
    if (step_pos0_ < 0) step_pos0_ = op.pos0;
    if (op.pos0 != step_pos0_) tainted_ = true;  // positions that move within a step: not one scalar
  }
  const bool can_defer = exec_ && !tainted_ && generation == graph_generation_ && deferred_ == step_.size() &&
                         deferred_ < graph_ops_.size() && op.same_as(graph_ops_[deferred_]);
  if (can_defer) {
    step_.push_back(op);
    ++deferred_;
    return;
  }
  flush();
  run_(&op, 1, false);
  step_.push_back(op);
}

void DecodeGraph::flush() {
  const size_t n = deferred_;
  deferred_ = 0;  // before running: a throwing op must not leave them to run twice
  for (size_t k = 0; k < n; ++k) run_(&step_[k], 1, false);
}

void DecodeGraph::barrier() {
  if (!enabled_) return;
  flush();
  tainted_ = true;
}

void DecodeGraph::host_write() {
  if (!step_.empty()) barrier();
}

void DecodeGraph::end_step(size_t generation) {
  if (!enabled_) return;
  if (exec_ && generation != graph_generation_) {
    flush();  // a scratch buffer the graph points into was reallocated: the graph is stale
    drop();
  }
  const bool whole = exec_ && !tainted_ && deferred_ > 0 && deferred_ == step_.size() &&
                     deferred_ == graph_ops_.size();
  if (whole) {
    if (!launched_) launch(step_pos0_ < 0 ? 0 : step_pos0_);
    deferred_ = 0;
    ++replays_;
  } else {
    flush();  // after an early launch too: the step did not match, so its ops run as issued
    if (!tainted_ && !step_.empty() && !(exec_ && same_steps(step_, graph_ops_)) && same_steps(step_, prev_))
      capture(generation);
  }
  if (tainted_) {
    prev_.clear();
  } else {
    prev_.swap(step_);
  }
  step_.clear();
  tainted_ = false;
  step_pos0_ = -1;
  deferred_ = 0;
  promised_pos0_ = -1;
  launched_ = false;
}

void DecodeGraph::begin_step(int pos0) {
  if (enabled_ && step_.empty()) promised_pos0_ = pos0;
}

void DecodeGraph::launch(int pos0) {
  *pos0_host_ = pos0;
  FKV_CUDA_CHECK(cudaMemcpyAsync(pos0_dev_, pos0_host_, sizeof(int), cudaMemcpyHostToDevice, stream_),
                 "setting the decode graph's position");
  FKV_CUDA_CHECK(cudaGraphLaunch(exec_, stream_), "replaying the decode graph");
}

void DecodeGraph::capture(size_t generation) {
  drop();
  cudaGraph_t graph = nullptr;
  FKV_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "capturing the decode graph");
  try {
    for (size_t k = 0; k < step_.size();) k += run_(&step_[k], step_.size() - k, true);
  } catch (...) {
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    enabled_ = false;  // a kernel that cannot be captured: stay eager rather than fail the step
    return;
  }
  FKV_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph), "capturing the decode graph");
  const cudaError_t st = cudaGraphInstantiate(&exec_, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (st != cudaSuccess) {
    exec_ = nullptr;
    check(st, "cudaGraphInstantiate", "instantiating the decode graph");
  }
  graph_ops_ = step_;
  graph_generation_ = generation;
  early_safe_ = true;
  for (const Op& op : graph_ops_)
    if (op.kind == OpKind::kSplitAppend || op.kind == OpKind::kSplitAttention) early_safe_ = false;
}

void DecodeGraph::drop() {
  if (exec_) (void)cudaGraphExecDestroy(exec_);
  exec_ = nullptr;
  graph_ops_.clear();
}

}  // namespace fkv::cuda
