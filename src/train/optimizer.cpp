// AdamW, step for step as torch.optim.AdamW (decoupled weight decay, bias correction):
//   p ← p·(1 − lr·wd)
//   m ← lerp(m, g, 1 − β1)            v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
// The scalars are computed in double as Python does, the tensor arithmetic in float32.
#include "core/parallel.h"
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "convnext/error.h"

namespace convnext::train {

bool trainer_decays(const std::string& name) {
  // Trainer.get_decay_parameter_names: every parameter except biases and those of LayerNorm
  // modules (ConvNextLayerNorm is an nn.LayerNorm: embeddings.layernorm, layers.*.layernorm,
  // downsampling_layer.0, the final layernorm, the backbone's hidden_states_norms).
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("bias")) return false;
  if (name.find("layernorm.") != std::string::npos || name.find("downsampling_layer.0.") != std::string::npos ||
      name.find("hidden_states_norms.") != std::string::npos)
    return false;
  return true;
}

AdamW::AdamW(const Gradients& grads, AdamWOptions options, const kernels::Context& ctx)
    : opt_(options), ctx_(ctx), names_(grads.names) {
  for (size_t i = 0; i < grads.grads.size(); ++i) {
    m_.emplace_back(grads.grads[i].shape());
    v_.emplace_back(grads.grads[i].shape());
    decay_.push_back(opt_.decay_all || trainer_decays(names_[i]));
  }
}

void AdamW::step(Gradients& grads, double lr, float grad_scale, bool zero_grads) {
  ++step_;
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(step_));
  kernels::AdamWScalars s{};
  s.grad_scale = grad_scale;  // as clip_grad_norm_'s g.mul_(coef) before the step
  s.step_size = static_cast<float>(lr / bc1);
  s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  s.w1 = static_cast<float>(1.0 - opt_.beta1);
  s.b2 = static_cast<float>(opt_.beta2);
  s.w2 = static_cast<float>(1.0 - opt_.beta2);
  s.eps = static_cast<float>(opt_.eps);
  const float shrink = static_cast<float>(1.0 - lr * opt_.weight_decay);
  // One pass over p, g, m, v per tensor (the step is memory-bound: 32 bytes per parameter).
  for (size_t i = 0; i < grads.grads.size(); ++i) {
    s.keep = decay_[i] && opt_.weight_decay != 0.0 ? shrink : 1.0f;  // p·1 is p
    kernels::adamw_update(ctx_, s, grads.params[i]->data(), grads.grads[i].data(), m_[i].data(), v_[i].data(),
                          grads.grads[i].numel(), zero_grads);
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < names_.size(); ++i) {
    out.emplace_back("exp_avg." + names_[i], m_[i]);
    out.emplace_back("exp_avg_sq." + names_[i], v_[i]);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t step) {
  std::unordered_map<std::string, const Tensor*> by_name;
  for (const auto& [k, t] : tensors) by_name[k] = &t;
  for (size_t i = 0; i < names_.size(); ++i)
    for (int which = 0; which < 2; ++which) {
      const std::string key = (which ? "exp_avg_sq." : "exp_avg.") + names_[i];
      const auto it = by_name.find(key);
      if (it == by_name.end()) throw Error("optimizer state has no " + key);
      Tensor& dst = which ? v_[i] : m_[i];
      if (it->second->shape() != dst.shape())
        throw Error("optimizer state " + key + " has shape " + shape_str(it->second->shape()) + ", the model " +
                    shape_str(dst.shape()));
      std::copy(it->second->data(), it->second->data() + dst.numel(), dst.data());
    }
  step_ = step;
}

double LrSchedule::at(int64_t step) const {
  // step counts optimizer steps already taken (the lr of the step about to run), as LambdaLR.
  if (step < warmup) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const bool anchored = anchor_step >= 0;
  const int64_t from = anchored ? anchor_step : warmup;  // where the decay starts
  const double peak = anchored ? anchor_lr : base_lr;
  if (kind == "constant") return peak;
  const double progress = static_cast<double>(step - from) / static_cast<double>(std::max<int64_t>(1, total - from));
  if (kind == "linear")
    return peak * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - from)));
  if (kind == "cosine") return peak * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));
  throw Error("unknown --lr-scheduler '" + kind + "' (constant, linear, cosine)");
}

double scheduled_lr(const std::string& kind, double base_lr, int64_t step, int64_t warmup, int64_t total) {
  return LrSchedule{kind, base_lr, warmup, total}.at(step);
}

LrSchedule continue_schedule(const LrSchedule& saved, const LrSchedule& wanted, int64_t step) {
  if (wanted.same_settings(saved)) return saved;
  LrSchedule s = wanted;
  if (step < wanted.warmup) return s;
  s.anchor_step = step;
  s.anchor_lr = wanted.base_lr != saved.base_lr ? wanted.base_lr : saved.at(step);
  return s;
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0f;
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

}  // namespace convnext::train
