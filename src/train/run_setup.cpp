#include "train/run_setup.h"

#include "train/distributed.h"

#include <algorithm>

#include "convnext/error.h"
#include "convnext/model.h"
#include "io/hub_cache.h"

namespace convnext::train {

namespace {

// The processor for the model: --processor, else the checkpoint's (transformers' class defaults
// when it has none, as `classify` would run it), else the one a fresh model ships with.
ConvNextImageProcessor choose_processor(const TrainOptions& o, const ConvNextConfig& cfg, const std::string& model_dir) {
  if (!o.processor_path.empty()) return ConvNextImageProcessor::from_pretrained(o.processor_path);
  if (!model_dir.empty()) return ConvNextImageProcessor::from_pretrained(model_dir);
  return ConvNextImageProcessor::for_new_model(cfg, o.config_path);
}

}  // namespace

std::optional<Resumed> settle_options(TrainOptions& o) {
  const bool resuming = !o.resume_dir.empty();
  std::optional<Resumed> resumed;
  if (resuming) resumed = read_resumed(o);
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1");
  if (o.grad_accum < 1) throw Error("--grad-accum must be >= 1");
  if (o.precision != DType::F32 && o.precision != DType::BF16)
    throw Error(std::string("--dtype must be f32 or bf16 for training (bf16: mixed precision), got ") + dtype_short_name(o.precision));
  if (o.output.empty()) throw Error("--output DIR is required");
  if (o.data.empty()) throw Error(resuming ? o.resume_dir + "/trainer_state.json names no data: give --data PATH" : "--data PATH is required");
  if (o.threads > 0) set_num_threads(o.threads);
  return resumed;
}

ModelSource choose_model(const TrainOptions& o, bool resuming) {
  // A hub id ("org/name[@rev]") resolves to its snapshot in the local Hugging Face cache.
  std::string dir = resuming ? o.resume_dir : o.model_dir.empty() ? "" : io::resolve_model_path(o.model_dir);
  const int sources = !o.model_dir.empty() + !o.config_path.empty() + !o.arch.empty();
  if (!resuming && sources != 1) throw Error("give exactly one of --model DIR, --config CONFIG.json, --arch NAME (or --resume DIR)");
  // Resuming, the checkpoint is the model (the command's --model/--config/--arch are ignored).
  ConvNextConfig cfg = !dir.empty() ? config_of_checkpoint(dir)
                       : !o.config_path.empty() ? ConvNextConfig::from_file(o.config_path)
                                                : ConvNextConfig::preset(o.arch, 2);
  ConvNextImageProcessor proc = choose_processor(o, cfg, dir);
  return {std::move(dir), std::move(cfg), std::move(proc)};
}

// Labels: --num-labels; for a checkpoint its own, or with --ignore-mismatched-sizes the data's
// classes; for a fresh model the data's classes, else the config's (--config). When the count
// does not depend on the data, the data is opened, and its labels checked against it, once.
TrainingData open_training_data(const TrainOptions& o, const ModelSource& m) {
  const int64_t known = o.num_labels ? *o.num_labels : (!m.fresh() && !o.ignore_mismatched_sizes) ? m.cfg.num_labels() : 0;
  TrainingData d;
  d.source = DataSource::open(o.data, m.proc, m.cfg.num_channels, known);
  d.classes = d.source->class_names();
  d.num_labels = known;
  if (!known) {
    if (!d.classes.empty()) d.num_labels = static_cast<int64_t>(d.classes.size());
    else if (!o.arch.empty() && !d.source->float_labels())
      throw Error(o.data + ": the data has no class names; give --num-labels N");
    else d.num_labels = m.cfg.num_labels();
  }
  if (!d.classes.empty() && static_cast<int64_t>(d.classes.size()) != d.num_labels)
    throw Error(o.data + " has " + std::to_string(d.classes.size()) + " classes, the model " + std::to_string(d.num_labels) +
                " labels" + (m.fresh() ? "" : " (pass --ignore-mismatched-sizes to replace the classifier)"));
  if (!known) d.source = DataSource::open(o.data, m.proc, m.cfg.num_channels, d.num_labels);  // the count just decided
  return d;
}

std::unique_ptr<DataSource> open_eval_data(const TrainOptions& o, const ModelSource& m, int64_t num_labels) {
  if (o.eval_data.empty()) return nullptr;
  return DataSource::open(o.eval_data, m.proc, m.cfg.num_channels, num_labels);
}

RunLength plan_length(const TrainOptions& o, std::optional<Resumed>& resumed, const DataSource& data) {
  RunLength len;
  // A rank of a data-parallel run reads its padded share of each epoch (LoaderOptions::world).
  const Comm& comm = Comm::world();
  const int64_t share = (data.size() + comm.size() - 1) / comm.size();
  len.batches_per_epoch = (share + o.batch_size - 1) / o.batch_size;
  if (len.batches_per_epoch == 0) throw Error(o.data + ": no examples");
  const int64_t steps_per_epoch = (len.batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
  len.total_steps = run_length(o, resumed ? &*resumed : nullptr, steps_per_epoch);
  if (len.total_steps < 1) throw Error("nothing to do: --steps / --epochs must be >= 1");
  return len;
}

AdamWOptions adamw_options(const TrainOptions& o) {
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decay_all = o.weight_decay_all;
  return ao;
}

LoaderOptions loader_options(const TrainOptions& o) {
  LoaderOptions lopt;
  lopt.batch_size = o.batch_size;
  lopt.shuffle = o.shuffle;
  lopt.augment.enabled = o.augment;
  lopt.augment.scale_min = o.crop_scale_min;
  lopt.augment.hflip = o.hflip;
  lopt.seed = o.seed;
  lopt.workers = std::max(1, o.workers);
  lopt.rank = Comm::world().rank();
  lopt.world = Comm::world().size();
  return lopt;
}

EvalOptions eval_options(const TrainOptions& o) {
  EvalOptions eo;
  eo.batch_size = std::max<int64_t>(o.batch_size, 32);
  eo.workers = std::max(1, o.workers);
  return eo;
}

}  // namespace convnext::train
