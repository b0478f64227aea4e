// `convnext train`: the training loop of transformers' Trainer for image classification
// (AdamW, schedule, clipping, accumulation), on our data sources, writing a checkpoint
// transformers can load plus what --resume needs, a log and a plot.
#pragma once
#include "convnext/train.h"

namespace convnext::train {

using TrainOptions = convnext::TrainOptions;

// Runs the training; returns the process exit status (0, or 130 after Ctrl-C with a checkpoint).
// With resume_dir, the run continues from its trainer_state.json: its data, evaluation data,
// hyperparameters, schedule, length, seed and augmentation are restored unless `given` names
// them, and output defaults to resume_dir. A run already at its length changes nothing. A new
// length (or schedule) never raises the learning rate: see continue_schedule (train/optimizer.h).
int run_training(const TrainOptions& options);  // convnext::run_training

}  // namespace convnext::train
