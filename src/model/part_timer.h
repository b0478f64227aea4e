// Where a pass spends its time, part by part, for a ForwardProfile (bench --profile): the forward
// pass (forward.cpp) and the training step (train/backprop.cpp) mark the end of each part.
#pragma once
#include <chrono>
#include <string>

#include "convnext/context.h"

namespace convnext::detail {

// Records the time since the previous mark under a name, when a profile is requested (else free).
class PartTimer {
 public:
  explicit PartTimer(ForwardProfile* p, bool clear = true) : p_(p) {
    if (!p_) return;
    if (clear) {
      p_->parts.clear();
      p_->ms.clear();
    }
    t_ = std::chrono::steady_clock::now();
  }
  // `part`, or "stage{stage+1}.{part}" with a stage; `prefix` goes first ("backward.").
  void mark(const char* part, int64_t stage = -1, const char* prefix = "") {
    if (!p_) return;
    const auto t = std::chrono::steady_clock::now();
    p_->parts.push_back(prefix + (stage < 0 ? std::string(part) : "stage" + std::to_string(stage + 1) + "." + part));
    p_->ms.push_back(std::chrono::duration<double, std::milli>(t - t_).count());
    t_ = t;
  }

 private:
  ForwardProfile* p_;
  std::chrono::steady_clock::time_point t_;
};

}  // namespace convnext::detail
