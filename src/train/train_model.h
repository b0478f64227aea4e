// The network a training run trains, with its gradients, optimizer and training graph. The loop
// (trainer.cpp) reaches the engine's model types (model/parameters.h, model/plan.h, TrainGraph) through this alone.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "convnext/train.h"
#include "train/data.h"
#include "train/run_setup.h"

namespace convnext::train {

struct Gradients;
class AdamW;

class Model {
 public:
  // A fresh network initialised from o.seed, or the checkpoint in m.dir (its warnings printed);
  // its labels named after the data's classes when it only has generic names (or is new).
  Model(const TrainOptions& o, const ModelSource& m, const TrainingData& d);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  ConvNextConfig& config();
  int64_t parameter_count() const;
  Gradients& grads();
  AdamW& optimizer();
  // Forward and backward of one batch in training mode: its gradients, times loss_scale, are
  // added to grads(); returns its loss. Each sample's stochastic depth is seeded by
  // (drop_seed, its index in the data). With `sync` (the last micro-batch of an optimizer step of
  // a data-parallel run) the gradients are averaged over the ranks as the backward produces them;
  // finish_sync() waits for the last of it.
  float forward_backward(const Batch& b, float loss_scale, uint64_t drop_seed, bool sync);
  void finish_sync();
  // Data parallelism: rank 0's weights on every rank (a run starts from one model).
  void broadcast_weights();
  double last_sync_wait_seconds() const;
  // The loss and accuracy on `data` of the weights as they are now.
  EvalResult evaluate(const DataSource& data, const EvalOptions& options);
  void save(const std::string& dir);  // config.json and model.safetensors

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convnext::train
