#include "metrics.h"

#include <sstream>

namespace convnext::serve {

void ModelMetrics::observe_batch(int64_t images) {
  for (size_t i = 0; i < std::size(kBuckets); ++i)
    if (images <= kBuckets[i]) batch_le[i].fetch_add(1);
  batch_count.fetch_add(1);
  batch_sum.fetch_add(images);
}

ModelMetrics& Metrics::of(const std::string& model) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& m = models_[model];
  if (!m) m = std::make_unique<ModelMetrics>();
  return *m;
}

namespace {
struct Series {
  const char* name;
  const char* type;
  const char* help;
  std::atomic<int64_t> ModelMetrics::*value;
};
constexpr Series kSeries[] = {
    {"convnext_inference_request_success", "counter", "Number of successful inference requests",
     &ModelMetrics::request_success},
    {"convnext_inference_request_failure", "counter", "Number of failed inference requests",
     &ModelMetrics::request_failure},
    {"convnext_inference_count", "counter", "Number of images inferred", &ModelMetrics::inference_count},
    {"convnext_inference_exec_count", "counter", "Number of batches executed", &ModelMetrics::exec_count},
    {"convnext_inference_request_duration_us", "counter", "Cumulative request duration in microseconds",
     &ModelMetrics::request_duration_us},
    {"convnext_inference_queue_duration_us", "counter", "Cumulative time requests waited for a batch, in microseconds",
     &ModelMetrics::queue_duration_us},
    {"convnext_inference_compute_infer_duration_us", "counter",
     "Cumulative model execution time in microseconds (per request, of the batch it ran in)",
     &ModelMetrics::compute_infer_duration_us},
    {"convnext_inference_queue_length", "gauge", "Requests waiting for a batch", &ModelMetrics::queue_length},
};
}  // namespace

std::string Metrics::prometheus_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream o;
  for (const Series& s : kSeries) {
    o << "# HELP " << s.name << ' ' << s.help << "\n# TYPE " << s.name << ' ' << s.type << '\n';
    for (const auto& [name, m] : models_) o << s.name << "{model=\"" << name << "\"} " << ((*m).*(s.value)).load() << '\n';
  }
  const char* h = "convnext_inference_batch_size";
  o << "# HELP " << h << " Images per executed batch\n# TYPE " << h << " histogram\n";
  for (const auto& [name, m] : models_) {
    for (size_t i = 0; i < std::size(ModelMetrics::kBuckets); ++i)
      o << h << "_bucket{model=\"" << name << "\",le=\"" << ModelMetrics::kBuckets[i] << "\"} " << m->batch_le[i].load()
        << '\n';
    o << h << "_bucket{model=\"" << name << "\",le=\"+Inf\"} " << m->batch_count.load() << '\n';
    o << h << "_sum{model=\"" << name << "\"} " << m->batch_sum.load() << '\n';
    o << h << "_count{model=\"" << name << "\"} " << m->batch_count.load() << '\n';
  }
  return o.str();
}

}  // namespace convnext::serve
