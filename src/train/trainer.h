// `convnext train`: the training loop of transformers' Trainer for image classification
// (AdamW, schedule, clipping, accumulation), on our data sources, writing a checkpoint
// transformers can load plus what --resume needs, a log and a plot.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace convnext::train {

struct TrainOptions {
  // Where the model comes from: exactly one of these (or resume_dir).
  std::string model_dir, config_path, arch;
  std::string processor_path;  // preprocessor_config.json to use (default: see cmd_train's help)
  std::optional<int64_t> num_labels;
  bool ignore_mismatched_sizes = false;
  std::string data, eval_data, output;
  std::optional<int64_t> epochs, steps;
  int64_t batch_size = 8, grad_accum = 1;
  double lr = 5e-5, weight_decay = 0.0;
  bool weight_decay_all = false;
  std::string scheduler = "linear";
  int64_t warmup_steps = 0;
  double max_grad_norm = 1.0;
  bool shuffle = true, augment = true;
  double crop_scale_min = 0.08;  // RandomResizedCrop's scale lower bound
  bool hflip = true;
  std::optional<double> drop_path_rate;  // overrides the config's
  uint64_t seed = 42;                     // the Trainer's default
  std::string save_grads;
  int64_t save_every = 0;  // optimizer steps; 0: at the end (and on Ctrl-C) only
  std::string resume_dir;
  int threads = 0;
  bool skip_nan = false;
  int64_t log_every = 0;  // optimizer steps between log.jsonl lines; 0: about 50 lines per run
  int workers = 2;
  bool json = false;      // progress as JSON lines on stdout
  // The settings the command line gave, by flag name ("lr", "batch-size", "no-shuffle", ...):
  // resuming, every other setting the run saved is restored (see run_training).
  std::set<std::string> given;
};

// Runs the training; returns the process exit status (0, or 130 after Ctrl-C with a checkpoint).
// With resume_dir, the run continues from its trainer_state.json: its data, evaluation data,
// hyperparameters, schedule, length, seed and augmentation are restored unless `given` names
// them, and output defaults to resume_dir. A run already at its length changes nothing. A new
// length (or schedule) never raises the learning rate: see continue_schedule (train/optimizer.h).
int run_training(const TrainOptions& options);

}  // namespace convnext::train
