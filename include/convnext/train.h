// Training and evaluation as `convnext train` and `convnext eval` run them: the Hugging Face
// Trainer's loop for ConvNextForImageClassification (AdamW, schedules, clipping, accumulation,
// resumable checkpoints, log.jsonl, training.svg), and loss, top-1/top-5, per-class accuracy and
// the confusion matrix of a model on a data set.
//
//   convnext::TrainOptions o;
//   o.model_dir = "models/convnext-fashion-mnist";
//   o.data = "/usr/share/datasets/fashion-mnist:train";
//   o.output = "my-run";
//   o.steps = 100;
//   convnext::run_training(o);
//   convnext::EvalResult r = convnext::evaluate_dataset("my-run", "/usr/share/datasets/fashion-mnist:test");
//
// Data (`data`, `eval_data`, evaluate_dataset's `data`): a directory of class folders
// (ImageFolder), a CSV of path,label, MNIST/Fashion-MNIST idx files (DIR[:train|:test]), or a
// safetensors file with pixel_values and labels.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "convnext/dtype.h"
#include "convnext/export.h"

namespace convnext {

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
  // F32, or BF16: mixed precision as torch.autocast on CPU (every GEMM of forward and backward
  // takes bf16 inputs and sums in fp32; fp32 master weights, LayerNorm, softmax, loss,
  // gradients and optimizer). Checkpoints stay fp32.
  DType precision = DType::F32;
  std::string save_grads;
  int64_t save_every = 0;  // optimizer steps; 0: at the end (and on Ctrl-C) only
  std::string resume_dir;
  int threads = 0;
  bool skip_nan = false;
  int64_t log_every = 0;  // optimizer steps between log.jsonl lines; 0: about 50 lines per run
  int workers = 2;
  // Data parallelism (under mpirun): gradients are all-reduced in buckets of about this many MB,
  // each started as soon as the backward has produced it (PyTorch DDP's bucket_cap_mb).
  double bucket_mb = 25;
  bool json = false;      // progress as JSON lines on stdout
  // Called with every line written to log.jsonl (one JSON object: the step means, each
  // evaluation, the final summary), on the training thread; for progress in a program.
  std::function<void(const std::string& json_line)> on_log;
  // The settings the command line gave, by flag name ("lr", "batch-size", "no-shuffle", ...):
  // resuming, every other setting the run saved is restored (see run_training).
  std::set<std::string> given;
};

// Runs the training; returns the process exit status (0, or 130 after Ctrl-C with a checkpoint).
// With resume_dir, the run continues from its trainer_state.json: its data, evaluation data,
// hyperparameters, schedule, length, seed and augmentation are restored unless `given` names
// them, and output defaults to resume_dir. A run already at its length changes nothing. A new
// length (or schedule) never raises the learning rate (README: "Resuming").
CONVNEXT_API int run_training(const TrainOptions& options);

struct EvalResult {
  int64_t count = 0, skipped = 0;
  double loss = 0;            // mean over examples
  std::string problem_type;
  bool classification = false;  // single-label: the accuracy fields below are filled
  double top1 = 0, top5 = 0;
  std::vector<std::string> class_names;  // the model's id2label
  std::vector<int64_t> class_total, class_correct;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  double seconds = 0;
  std::string dtype = "f32";  // the arithmetic the model ran in (EvalOptions::precision)
  // With EvalOptions::agree_with: that dtype's name and the examples whose top-1 it gives the
  // same (every example with a label, -100 included, is compared).
  std::string agree_with;
  int64_t agreed = 0, compared = 0;
};

struct EvalOptions {
  int64_t batch_size = 64;
  std::function<void(int64_t done, int64_t total)> progress;  // after each batch
  // Threads that read and preprocess the next batches while the model runs (0..1024; 0: the
  // calling thread reads each batch in turn). The results do not depend on it.
  int workers = 2;
  // The model's arithmetic: f32, bf16 or int8 (DType::I8: the pointwise GEMMs in int8).
  DType precision = DType::F32;
  // Also runs every batch in this dtype and counts the examples whose top-1 class both give
  // (EvalResult::agreed): how far int8 or bf16 moves the predictions, example by example.
  std::optional<DType> agree_with;
};

// Evaluates the ConvNextForImageClassification checkpoint `model` (a directory, hub id or any
// layout from_pretrained reads) on `data`, preprocessed with the checkpoint's own processor.
CONVNEXT_API EvalResult evaluate_dataset(const std::string& model, const std::string& data, const EvalOptions& options = {});
// The rank of this process in a data-parallel run (mpirun -np N; 0 otherwise) and the number of
// ranks (1 without mpirun). Under mpirun, run_training and evaluate_dataset work on every rank
// together; rank 0 is the one that writes and prints.
CONVNEXT_API int distributed_rank();
CONVNEXT_API int distributed_size();
CONVNEXT_API std::string eval_json(const EvalResult& r);  // one line
CONVNEXT_API std::string eval_text(const EvalResult& r);  // the report for people, with the confusion matrix
CONVNEXT_API void write_confusion_svg(const EvalResult& r, const std::string& path);

}  // namespace convnext
