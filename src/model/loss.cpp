// The loss of transformers' ForImageClassification (ForSequenceClassificationLoss).
#include <cmath>

#include "convnext/error.h"
#include "convnext/model.h"

namespace convnext {

float classification_loss(const Tensor& logits, const Labels& labels, std::string& problem_type) {
  const int64_t N = logits.dim(0), L = logits.dim(1);
  if (problem_type.empty()) {
    problem_type = infer_problem_type(L, labels.is_integer());
  }
  auto float_values = [&]() -> std::vector<double> {
    std::vector<double> v;
    if (labels.is_integer()) for (int64_t id : labels.class_ids) v.push_back(static_cast<double>(id));
    else for (int64_t i = 0; i < labels.values.numel(); ++i) v.push_back(labels.values[i]);
    return v;
  };

  if (problem_type == "regression") {
    // MSELoss(logits.squeeze(), labels.squeeze()) for one label, MSELoss(logits, labels) otherwise.
    const std::vector<double> y = float_values();
    if (static_cast<int64_t>(y.size()) != N * L)
      throw Error("regression labels have " + std::to_string(y.size()) + " values, logits have " + std::to_string(N * L));
    double s = 0;
    for (int64_t i = 0; i < N * L; ++i) {
      const double d = static_cast<double>(logits[i]) - y[static_cast<size_t>(i)];
      s += d * d;
    }
    return static_cast<float>(s / static_cast<double>(N * L));
  }

  if (problem_type == "single_label_classification") {
    // Cross-entropy over logits.view(-1, num_labels), mean over labels that are not -100.
    if (!labels.is_integer()) throw Error("single_label_classification needs integer class labels (I64)");
    if (static_cast<int64_t>(labels.class_ids.size()) != N)
      throw Error("labels has " + std::to_string(labels.class_ids.size()) + " entries for a batch of " + std::to_string(N));
    double s = 0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t y = labels.class_ids[static_cast<size_t>(n)];
      if (y == -100) continue;
      if (y < 0 || y >= L)
        throw Error("label " + std::to_string(y) + " is out of range for " + std::to_string(L) + " classes");
      const float* z = logits.data() + n * L;
      double mx = z[0];
      for (int64_t j = 1; j < L; ++j) mx = std::fmax(mx, z[j]);
      double se = 0;
      for (int64_t j = 0; j < L; ++j) se += std::exp(z[j] - mx);
      s += std::log(se) + mx - z[y];
      ++count;
    }
    return static_cast<float>(s / static_cast<double>(count));  // all ignored → NaN, as PyTorch
  }

  if (problem_type == "multi_label_classification") {
    // BCEWithLogitsLoss: mean of max(z,0) − z·y + log(1 + e^−|z|).
    const std::vector<double> y = float_values();
    if (static_cast<int64_t>(y.size()) != N * L)
      throw Error("multi-label labels have " + std::to_string(y.size()) + " values, logits have shape [" +
                  std::to_string(N) + "," + std::to_string(L) + "]");
    double s = 0;
    for (int64_t i = 0; i < N * L; ++i) {
      const double z = logits[i];
      s += std::fmax(z, 0.0) - z * y[static_cast<size_t>(i)] + std::log1p(std::exp(-std::fabs(z)));
    }
    return static_cast<float>(s / static_cast<double>(N * L));
  }
  throw Error("unknown problem_type '" + problem_type + "'");
}

}  // namespace convnext
