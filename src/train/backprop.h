// Training pass of ConvNextForImageClassification: the forward pass in training mode, keeping
// what each layer's backward needs, the loss, and the backward pass that accumulates the
// gradient of every parameter (and optionally of pixel_values).
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "convnext/model.h"
#include "kernels/kernels.h"
#include "model/parameters.h"

namespace convnext::train {

// One gradient tensor per parameter, in the order and with the names of model.state_dict().
struct Gradients {
  std::vector<std::string> names;
  std::vector<Tensor*> params;
  std::vector<Tensor> grads;
  explicit Gradients(detail::Parameters& params);
  Tensor& of(const Tensor& param);  // the gradient of a parameter of the same network
  size_t index_of(const Tensor& param) const;  // its position in names / params / grads
  void zero();
  double global_norm() const;  // sqrt(Σ g²) over every parameter, as clip_grad_norm_ computes it

 private:
  std::unordered_map<const float*, size_t> index_;
};

// The loss of transformers' ForImageClassification and its gradient w.r.t. the logits.
// `problem_type` as in classification_loss (empty: inferred, and written back).
float loss_and_grad(const Tensor& logits, const Labels& labels, std::string& problem_type, Tensor& dlogits);

// Stochastic depth rates per block, in network order: torch.linspace(0, drop_path_rate,
// sum(depths)) split by stage, as ConvNextEncoder builds them.
std::vector<float> drop_path_rates(const ConvNextConfig& config);

// How one forward/backward runs beyond its inputs.
struct StepOptions {
  float loss_scale = 1.0f;  // the gradients are of loss × loss_scale (1/K for K accumulated batches)
  // Stochastic depth (training mode, when drop_path_rate > 0): sample n's masks come from its own
  // seed, so a sample is dropped alike whatever batch or rank it is in. Null: no stochastic depth.
  const std::vector<uint64_t>* sample_seeds = nullptr;
  Tensor* grad_pixels = nullptr;  // when given: d loss / d pixel_values (NCHW)
  // Called as the backward finishes each layer, with the parameters whose gradients are now final
  // (head first, embeddings last): data parallelism starts reducing them while the backward goes on.
  std::function<void(const std::vector<const Tensor*>& params)> on_grads_ready;
  // When given: the time of each part of the step (bench --train --profile), forward parts named
  // as a forward profile's ("embeddings", "stage2.blocks", ...), then "loss", then the backward's
  // ("backward.head", "backward.stage4.blocks", ..., "backward.embeddings").
  ForwardProfile* profile = nullptr;
};

class TrainGraph {
 public:
  // Runs on `ctx`'s threads and kernel family. `compute` f32, or bf16 for mixed precision as
  // torch.autocast runs it on CPU: every GEMM of the forward and the backward (stem, downsampling,
  // pointwise, classifier; input and weight gradients) takes bf16 inputs and sums in fp32; the
  // weights (the master copy), the depthwise conv, LayerNorm, activations, loss and gradients
  // stay fp32. Unlike autocast, the GEMMs' outputs are kept in fp32.
  TrainGraph(detail::Parameters& params, const kernels::Context& ctx, DType compute = DType::F32);
  ~TrainGraph();

  struct Result {
    float loss = 0;
    Tensor logits;
    std::string problem_type;
  };
  // forward (training mode), loss, backward. Gradients are *added* to `grads`.
  Result forward_backward(const Tensor& pixel_values, const Labels& labels, Gradients& grads,
                          const StepOptions& options = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convnext::train
