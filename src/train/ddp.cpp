#include "train/ddp.h"

#include <algorithm>
#include <cstring>

namespace convnext::train {

GradientReducer::GradientReducer(Comm& comm, Gradients& grads, double bucket_mb) : comm_(comm), grads_(grads) {
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / sizeof(float)));
  const size_t n = grads.grads.size();
  bucket_of_.assign(n, 0);
  done_.assign(n, 0);
  int64_t filled = 0;
  for (size_t k = n; k-- > 0;) {  // reverse parameter order: the head's gradients come first
    const int64_t len = grads.grads[k].numel();
    if (buckets_.empty() || (filled + len > cap && !buckets_.back().members.empty())) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().members.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    filled += len;
  }
  for (Bucket& b : buckets_) {
    int64_t total = 0;
    for (size_t k : b.members) total += grads.grads[k].numel();
    b.flat.resize(static_cast<size_t>(total));
    b.waiting = b.members.size();
  }
}

void GradientReducer::start(Bucket& b) {
  float* dst = b.flat.data();
  for (size_t k : b.members) {
    const Tensor& g = grads_.grads[k];
    std::memcpy(dst, g.data(), static_cast<size_t>(g.numel()) * sizeof(float));
    dst += g.numel();
  }
  b.pending = comm_.start_allreduce_sum(b.flat.data(), static_cast<int64_t>(b.flat.size()));
}

void GradientReducer::ready(const std::vector<const Tensor*>& params) {
  for (const Tensor* p : params) {
    if (p->empty()) continue;
    const size_t k = grads_.index_of(*p);
    if (done_[k]) continue;
    done_[k] = 1;
    Bucket& b = buckets_[bucket_of_[k]];
    if (--b.waiting == 0) start(b);
  }
  for (Bucket& b : buckets_)  // MPI advances non-blocking collectives inside its calls
    if (b.pending) b.pending->test();
}

void GradientReducer::finish() {
  for (Bucket& b : buckets_)
    if (!b.pending) start(b);
  const auto t0 = std::chrono::steady_clock::now();
  const float inv = 1.0f / static_cast<float>(comm_.size());
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    const float* src = b.flat.data();
    for (size_t k : b.members) {
      Tensor& g = grads_.grads[k];
      for (int64_t i = 0; i < g.numel(); ++i) g[i] = src[i] * inv;
      src += g.numel();
    }
    b.waiting = b.members.size();
  }
  std::fill(done_.begin(), done_.end(), 0);
  last_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace convnext::train
