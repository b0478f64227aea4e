// Gradient averaging over the ranks of a data-parallel run, as PyTorch's DistributedDataParallel
// does it: the gradients are grouped into buckets of about `bucket_mb` MB in reverse parameter
// order (the order the backward produces them), and each bucket's all-reduce starts as soon as
// the backward has finished all of its parameters, so communication overlaps the rest of the
// backward. finish() waits for the last buckets and leaves every gradient averaged over the ranks.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "train/backprop.h"
#include "train/distributed.h"

namespace convnext::train {

class GradientReducer {
 public:
  GradientReducer(Comm& comm, Gradients& grads, double bucket_mb);

  // The parameters whose gradients the backward has just finished (TrainGraph's on_grads_ready).
  void ready(const std::vector<const Tensor*>& params);
  // Starts what is left, waits for every bucket and copies the averages back into the gradients.
  void finish();

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Of the last finish(): seconds spent waiting for the reductions after the backward ended.
  double last_wait_seconds() const { return last_wait_s_; }

 private:
  struct Bucket {
    std::vector<size_t> members;  // gradient indices
    std::vector<float> flat;
    size_t waiting = 0;           // members not yet ready this step
    std::unique_ptr<Comm::Pending> pending;
  };
  void start(Bucket& b);

  Comm& comm_;
  Gradients& grads_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // gradient index → bucket
  std::vector<char> done_;         // gradient index → ready this step
  double last_wait_s_ = 0;
};

}  // namespace convnext::train
