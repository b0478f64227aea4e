// What a training run decides before its first step: its settings (restored when resuming), the
// model it starts from, the data and the label count, and its length.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/image_processor.h"
#include "train/data.h"
#include "train/optimizer.h"
#include "train/resume.h"
#include "train/trainer.h"

namespace convnext::train {

// Fills `o` in from the run it resumes, if any, checks what every run needs and applies --threads.
std::optional<Resumed> settle_options(TrainOptions& o);

// Where the model comes from: a checkpoint directory (the resumed run's, or --model), or a fresh
// model of `cfg` (--config, --arch); the processor its images go through.
struct ModelSource {
  std::string dir;  // empty: a fresh model
  ConvNextConfig cfg;
  ConvNextImageProcessor proc;
  bool fresh() const { return dir.empty(); }
};
ModelSource choose_model(const TrainOptions& o, bool resuming);

// The training data, its class names (empty when it has none) and the label count the model gets.
struct TrainingData {
  std::unique_ptr<DataSource> source;
  std::vector<std::string> classes;
  int64_t num_labels = 0;
};
TrainingData open_training_data(const TrainOptions& o, const ModelSource& m);

// The evaluation data (--eval-data), or null.
std::unique_ptr<DataSource> open_eval_data(const TrainOptions& o, const ModelSource& m, int64_t num_labels);

// How long the run is: in batches of the data per epoch and in optimizer steps.
struct RunLength {
  int64_t batches_per_epoch = 0, total_steps = 0;
};
RunLength plan_length(const TrainOptions& o, std::optional<Resumed>& resumed, const DataSource& data);

AdamWOptions adamw_options(const TrainOptions& o);
LoaderOptions loader_options(const TrainOptions& o);
// The evaluation pass: batches of at least 32 read by the run's --workers.
EvalOptions eval_options(const TrainOptions& o);

}  // namespace convnext::train
