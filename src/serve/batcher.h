// Dynamic batching for one model: requests are queued, and one thread runs them together, up to
// max_batch images per forward, waiting at most max_delay for a batch to fill. Every image's
// numbers are those of a lone forward: the kernels compute each pixel row on its own, whatever
// else shares the batch.
//
// The wait to fill a batch is skipped while it would be in vain: once a wait ran its full
// max_delay with no other request coming, requests that find the model idle and the queue empty
// run at once, until a request comes while another is queued or running (requests overlap
// again; the wait is back). So one client sending one request at a time gets no added latency,
// and a lone request on a fresh server still waits max_delay for company.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "convnext/context.h"
#include "convnext/model.h"
#include "metrics.h"

namespace convnext::serve {

using Clock = std::chrono::steady_clock;

struct BatchResult {
  Tensor logits, pooler_output;  // [n, num_labels], [n, C_last] for the request's n images
  std::string error;             // a one-line reason when the batch failed
  int64_t queue_us = 0, compute_us = 0;
};

struct BatcherOptions {
  int64_t max_batch = 16;
  std::chrono::microseconds max_delay{5000};
  int64_t max_queue = 256;  // requests waiting; more is QueueFull
  ExecutionContext context;
};

class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("the queue is full") {}
};

class Batcher {
 public:
  Batcher(const ConvNextForImageClassification& model, BatcherOptions options, ModelMetrics& metrics);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues pixel_values [n, C, H, W] (n >= 1); the future gives its rows of the outputs. A request
  // still queued at `deadline` is dropped with an error instead of run. Throws QueueFull.
  std::future<BatchResult> submit(Tensor pixel_values, Clock::time_point deadline);
  // From now on a batch runs as soon as the model is free, without waiting to fill (shutting
  // down: nothing more will come).
  void stop_waiting();
  // Runs what is queued, then stops the thread (the destructor does it too).
  void drain();

 private:
  struct Job {
    Tensor pixels;
    Clock::time_point queued, deadline;
    std::promise<BatchResult> promise;
  };
  void loop();
  // Answers the queued requests whose deadline has passed (no one waits for them any more), so
  // they hold no place in the queue. Called with the lock held.
  static void fail_expired(std::deque<Job>& jobs, Clock::time_point now);
  void drop_expired(Clock::time_point now);
  std::deque<Job> take_batch(std::unique_lock<std::mutex>& lock);
  void run(std::deque<Job>& jobs);
  void idle();  // the batch's forward is done

  const ConvNextForImageClassification& model_;
  const BatcherOptions options_;
  ModelMetrics& metrics_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool no_wait_ = false;
  bool busy_ = false;          // a batch is running
  bool waits_in_vain_ = false; // the last full wait saw no other request come (see above)
  uint64_t arrivals_ = 0;      // requests submitted, ever
  std::thread thread_;
};

}  // namespace convnext::serve
