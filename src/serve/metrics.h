// The server's metrics in Prometheus' text format: Triton's nv_inference_* set under the
// convnext_ prefix, one series per model (label model="NAME").
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace convnext::serve {

struct ModelMetrics {
  std::atomic<int64_t> request_success{0}, request_failure{0};
  std::atomic<int64_t> inference_count{0};  // images
  std::atomic<int64_t> exec_count{0};       // batches run
  std::atomic<int64_t> request_duration_us{0}, queue_duration_us{0}, compute_infer_duration_us{0};
  std::atomic<int64_t> queue_length{0};     // requests waiting for a batch
  // Batch sizes (images per execution): counts per upper bound, Prometheus' cumulative buckets.
  static constexpr int64_t kBuckets[] = {1, 2, 4, 8, 16, 32, 64, 128};
  std::atomic<int64_t> batch_le[std::size(kBuckets)] = {};
  std::atomic<int64_t> batch_count{0}, batch_sum{0};
  void observe_batch(int64_t images);
};

class Metrics {
 public:
  // The series of `model` (created on first use; the pointer stays valid).
  ModelMetrics& of(const std::string& model);
  std::string prometheus_text() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;
};

}  // namespace convnext::serve
