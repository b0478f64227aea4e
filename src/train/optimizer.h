// AdamW as torch.optim.AdamW computes it, the learning-rate schedules of transformers'
// get_scheduler, and gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/backprop.h"

namespace convnext::train {

struct AdamWOptions {
  double lr = 5e-5;  // the Trainer's defaults
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  // false: as the Trainer, no decay on biases and LayerNorm weights; true: every parameter, as
  // torch.optim.AdamW(model.parameters()).
  bool decay_all = false;
};

// Whether the Trainer decays a parameter: not biases, not LayerNorm weights.
bool trainer_decays(const std::string& name);

class AdamW {
 public:
  // The update runs on ctx's kernel family and threads (kernels::adamw_update).
  AdamW(const Gradients& grads, AdamWOptions options, const kernels::Context& ctx = kernels::default_context());
  // One step at learning rate `lr` with the gradients in `grads` times `grad_scale` (clipping's
  // factor: the same floats as scaling the gradients first); with `zero_grads` each gradient is
  // zeroed once read (zero_grad in the same pass over memory, not a pass of its own).
  void step(Gradients& grads, double lr, float grad_scale = 1.0f, bool zero_grads = false);
  int64_t steps() const { return step_; }
  const AdamWOptions& options() const { return opt_; }

  // State for --resume: exp_avg.<name>, exp_avg_sq.<name> and the step count.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t step);

 private:
  AdamWOptions opt_;
  kernels::Context ctx_;
  std::vector<std::string> names_;
  std::vector<Tensor> m_, v_;
  std::vector<bool> decay_;
  int64_t step_ = 0;
};

// transformers' get_scheduler: "constant", "linear", "cosine" (half a cosine to 0), each with
// linear warmup from 0 over `warmup` steps ("constant" with warmup = constant_with_warmup).
struct LrSchedule {
  std::string kind = "linear";
  double base_lr = 5e-5;
  int64_t warmup = 0, total = 1;
  // A resumed run whose horizon or schedule changed continues from anchor_step (>= warmup) at
  // anchor_lr, the rate it had there, and decays from it to 0 at `total` ("constant" stays at
  // it); -1: no anchor, the decay starts at the end of warmup from base_lr.
  int64_t anchor_step = -1;
  double anchor_lr = 0;

  // The rate of the step about to run when `step` optimizer steps are done, as LambdaLR.
  double at(int64_t step) const;
  bool same_settings(const LrSchedule& o) const {
    return kind == o.kind && base_lr == o.base_lr && warmup == o.warmup && total == o.total;
  }
};
double scheduled_lr(const std::string& kind, double base_lr, int64_t step, int64_t warmup, int64_t total);

// The schedule of a run resumed at `step`: `saved` itself when `wanted` has the same settings;
// otherwise `wanted`, anchored at `step` so that the rate never jumps back up: it decays from the
// rate `saved` gives there (or from wanted.base_lr when the peak rate changed) to 0 at
// wanted.total. Before the end of warmup the warmup just goes on, under the new settings.
LrSchedule continue_schedule(const LrSchedule& saved, const LrSchedule& wanted, int64_t step);

// Clipping by global norm: the factor clip_grad_norm_ scales the gradients by for this norm
// (Gradients::global_norm), max_norm / (norm + 1e-6) when that is below 1, else 1 (also when
// max_norm <= 0: no clipping). AdamW::step applies it as it reads each gradient.
float clip_coefficient(double norm, double max_norm);

}  // namespace convnext::train
