#include "batcher.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "convnext/error.h"

namespace convnext::serve {

namespace {
int64_t us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

// Rows [r0, r0 + n) of a [N, ...] tensor.
Tensor rows(const Tensor& t, int64_t r0, int64_t n) {
  Shape s = t.shape();
  const int64_t per = t.numel() / s[0];
  s[0] = n;
  Tensor out(s);
  std::memcpy(out.data(), t.data() + r0 * per, static_cast<size_t>(n * per) * sizeof(float));
  return out;
}
// The requests' pixel_values one after the other along the batch axis.
Tensor concat_rows(const std::vector<Tensor>& parts) {
  Shape s = parts.front().shape();
  s[0] = 0;
  for (const Tensor& p : parts) s[0] += p.dim(0);
  Tensor out(s);
  float* dst = out.data();
  for (const Tensor& p : parts) {
    std::memcpy(dst, p.data(), static_cast<size_t>(p.numel()) * sizeof(float));
    dst += p.numel();
  }
  return out;
}
}  // namespace

Batcher::Batcher(const ConvNextForImageClassification& model, BatcherOptions options, ModelMetrics& metrics)
    : model_(model), options_(std::move(options)), metrics_(metrics), thread_([this] { loop(); }) {}

Batcher::~Batcher() { drain(); }

std::future<BatchResult> Batcher::submit(Tensor pixels, Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) throw QueueFull();
  const Clock::time_point now = Clock::now();
  if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) drop_expired(now);
  if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) throw QueueFull();
  if (busy_ || !queue_.empty()) waits_in_vain_ = false;  // requests overlap: batching can pay
  ++arrivals_;
  Job job{std::move(pixels), now, deadline, {}};
  auto future = job.promise.get_future();
  queue_.push_back(std::move(job));
  metrics_.queue_length.store(static_cast<int64_t>(queue_.size()));
  cv_.notify_one();
  return future;
}

// Answers the requests of `jobs` whose deadline has passed with the timeout error, and drops them.
void Batcher::fail_expired(std::deque<Job>& jobs, Clock::time_point now) {
  for (auto it = jobs.begin(); it != jobs.end();) {
    if (now > it->deadline) {
      BatchResult r;
      r.error = "timed out in the queue";
      it->promise.set_value(std::move(r));
      it = jobs.erase(it);
    } else {
      ++it;
    }
  }
}

void Batcher::drop_expired(Clock::time_point now) {
  fail_expired(queue_, now);
  metrics_.queue_length.store(static_cast<int64_t>(queue_.size()));
}

void Batcher::idle() {
  std::lock_guard<std::mutex> lock(mutex_);
  busy_ = false;
}

void Batcher::stop_waiting() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    no_wait_ = true;
  }
  cv_.notify_one();
}

void Batcher::drain() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

// The next batch: the oldest request, then those behind it of the same image size while they
// fit in max_batch images, once max_batch images wait or the oldest has waited max_delay.
std::deque<Batcher::Job> Batcher::take_batch(std::unique_lock<std::mutex>& lock) {
  auto queued_images = [&] {
    int64_t n = 0;
    for (const Job& j : queue_) n += j.pixels.dim(0);
    return n;
  };
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    drop_expired(Clock::now());
    if (queue_.empty()) {
      if (stopping_) return {};
      continue;
    }
    const Clock::time_point until = queue_.front().queued + options_.max_delay;
    const uint64_t arrived = arrivals_;
    bool waited = false;
    while (!stopping_ && !no_wait_ && !waits_in_vain_ && !queue_.empty() && queued_images() < options_.max_batch &&
           Clock::now() < until) {
      cv_.wait_until(lock, until);
      waited = true;
    }
    // A lone request's wait that ran out with no one else coming: the next ones would too, until
    // requests overlap again (submit). Requests that queued together while the model was busy and
    // then waited with no newcomer did overlap: that wait is no reason to stop waiting (counting
    // it made the next lone request after a burst run at once, or not, by a race).
    if (waited && arrivals_ == arrived && queue_.size() == 1 && Clock::now() >= until) waits_in_vain_ = true;
    drop_expired(Clock::now());
    if (!queue_.empty()) break;
  }
  busy_ = true;
  std::deque<Job> batch;
  int64_t images = 0;
  const Shape first = queue_.front().pixels.shape();  // a copy: the front job moves into the batch
  for (auto it = queue_.begin(); it != queue_.end();) {
    const int64_t n = it->pixels.dim(0);
    const bool same_size = std::equal(first.begin() + 1, first.end(), it->pixels.shape().begin() + 1);
    if (same_size && (batch.empty() || images + n <= options_.max_batch)) {
      images += n;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
      if (images >= options_.max_batch) break;
    } else {
      ++it;
    }
  }
  metrics_.queue_length.store(static_cast<int64_t>(queue_.size()));
  return batch;
}

void Batcher::loop() {
  for (;;) {
    std::deque<Job> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      batch = take_batch(lock);
      if (batch.empty()) return;  // stopping, nothing left
    }
    run(batch);
  }
}

void Batcher::run(std::deque<Job>& jobs) {
  const Clock::time_point start = Clock::now();
  fail_expired(jobs, start);
  std::vector<Tensor> live;  // requests still wanted
  for (const Job& j : jobs) live.push_back(j.pixels);
  if (jobs.empty()) return idle();
  try {
    const Tensor px = live.size() == 1 ? live.front() : concat_rows(live);
    const ImageClassifierOutput out = model_.forward(px, nullptr, false, options_.context);
    const Clock::time_point end = Clock::now();
    idle();  // before the answers: a client's next request must find the model idle
    metrics_.exec_count.fetch_add(1);
    metrics_.observe_batch(px.dim(0));
    int64_t r0 = 0;
    for (Job& j : jobs) {
      const int64_t n = j.pixels.dim(0);
      BatchResult r;
      r.logits = rows(out.logits, r0, n);
      r.pooler_output = rows(out.pooler_output, r0, n);
      r.queue_us = us_between(j.queued, start);
      r.compute_us = us_between(start, end);
      r0 += n;
      j.promise.set_value(std::move(r));
    }
  } catch (const std::exception& e) {
    idle();
    for (Job& j : jobs) {
      BatchResult r;
      r.error = e.what();
      j.promise.set_value(std::move(r));
    }
  }
}

}  // namespace convnext::serve
