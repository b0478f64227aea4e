// d loss / d logits for the three losses of transformers' ForImageClassification (the loss
// value itself comes from classification_loss, so both always agree on the problem type).
#include <cmath>

#include "convnext/error.h"
#include "train/backprop.h"

namespace convnext::train {

float loss_and_grad(const Tensor& logits, const Labels& labels, std::string& problem_type, Tensor& dlogits) {
  const float loss = classification_loss(logits, labels, problem_type);
  const int64_t N = logits.dim(0), L = logits.dim(1);
  dlogits = Tensor({N, L});
  auto target = [&](int64_t i) -> double {
    return labels.is_integer() ? static_cast<double>(labels.class_ids[static_cast<size_t>(i)]) : labels.values[i];
  };
  if (problem_type == "regression") {  // mean of (z − y)²  →  2(z − y)/(N·L)
    const double k = 2.0 / static_cast<double>(N * L);
    for (int64_t i = 0; i < N * L; ++i) dlogits[i] = static_cast<float>(k * (logits[i] - target(i)));
  } else if (problem_type == "multi_label_classification") {  // BCE with logits → (σ(z) − y)/(N·L)
    const double k = 1.0 / static_cast<double>(N * L);
    for (int64_t i = 0; i < N * L; ++i)
      dlogits[i] = static_cast<float>(k * (1.0 / (1.0 + std::exp(-static_cast<double>(logits[i]))) - target(i)));
  } else {  // cross-entropy, mean over the labels that are not -100 → (softmax − onehot)/count
    int64_t count = 0;
    for (int64_t id : labels.class_ids) count += id != -100;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t y = labels.class_ids[static_cast<size_t>(n)];
      if (y == -100 || count == 0) continue;
      const float* z = logits.data() + n * L;
      double mx = z[0], se = 0;
      for (int64_t j = 1; j < L; ++j) mx = std::fmax(mx, z[j]);
      for (int64_t j = 0; j < L; ++j) se += std::exp(z[j] - mx);
      for (int64_t j = 0; j < L; ++j)
        dlogits[n * L + j] = static_cast<float>((std::exp(z[j] - mx) / se - (j == y ? 1.0 : 0.0)) / static_cast<double>(count));
    }
  }
  return loss;
}

}  // namespace convnext::train
