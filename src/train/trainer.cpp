// The training loop. One optimizer step = grad_accum micro-batches (forward + backward each,
// gradients added, the loss of each scaled by 1/group size), then clipping by global norm, the
// scheduled learning rate, AdamW, zero_grad — the order of transformers' Trainer.
//
// Everything random is seeded: the data order by (seed, epoch), each example's augmentation by
// (seed, epoch, index), stochastic depth by (seed, epoch, batch). A run stopped by Ctrl-C (or
// --save-every) saves the model, the optimizer moments and the position (epoch, batch), so
// --resume continues the same sequence of steps.
#include "train/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "convnext/error.h"
#include "core/parallel.h"
#include "train/backprop.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/progress.h"
#include "train/run_setup.h"
#include "train/train_model.h"

namespace convnext::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

// While it lives, Ctrl-C only sets g_interrupted: the run saves a checkpoint after the step.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupted = false;
    previous_ = std::signal(SIGINT, on_sigint);
  }
  ~SigintGuard() { std::signal(SIGINT, previous_); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  decltype(std::signal(SIGINT, SIG_DFL)) previous_;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// One run, from its first step (or the resumed one) to its last: the steps, log.jsonl, the
// progress line, evaluation and checkpoints.
class TrainRun {
 public:
  TrainRun(TrainOptions o, std::optional<Resumed> resumed, const ModelSource& m, TrainingData data, RunLength len);
  int run();  // the exit status: 0, or 130 after Ctrl-C

 private:
  // The micro-batches of the optimizer step being accumulated.
  struct Group {
    int64_t first = 0;  // its first batch in the epoch
    int64_t done = 0;   // micro-batches so far
    double loss = 0;    // the sum of their losses, each divided by the group's size
    int64_t images = 0;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  };

  void start_log();
  void print_header();
  int run_epoch();
  bool train_batches(Loader& loader);
  bool accumulate(const Batch& b, Group& g);
  void on_nonfinite_loss(float loss, const Group& g);
  void optimizer_step(const Group& g);
  void reduce_group(Group& g);
  bool interrupted();
  void save_first_gradients();
  void log_step(double lr);
  void show_progress(double loss, double lr);
  void end_epoch(Loader& loader);
  void evaluate_now(bool final_eval);
  void save();
  int finish(int exit_status);

  const TrainOptions o_;
  const std::optional<Resumed> resumed_;
  const ConvNextImageProcessor proc_;
  const TrainingData data_;
  const RunLength len_;
  const LrSchedule schedule_;
  const int64_t log_every_;
  const std::unique_ptr<DataSource> eval_data_;
  Comm& comm_;  // rank 0 of a data-parallel run writes and prints; every rank computes
  Model model_;
  Position pos_;
  TrainingCurves curves_;
  std::ofstream log_;
  void write_log(const json& j);
  Progress progress_;
  StepStats stats_;
  bool saved_grads_ = false;
  double sync_wait_s_ = 0;  // data parallel: time waiting for gradient all-reduces after backward
  std::chrono::steady_clock::time_point start_;
};

// The members are initialised in the order of the checks and messages of a run.
TrainRun::TrainRun(TrainOptions o, std::optional<Resumed> resumed, const ModelSource& m, TrainingData data, RunLength len)
    : o_(std::move(o)),
      resumed_(std::move(resumed)),
      proc_(m.proc),
      data_(std::move(data)),
      len_(len),
      schedule_(run_schedule(o_, resumed_ ? &*resumed_ : nullptr, len.total_steps)),
      log_every_(o_.log_every > 0 ? o_.log_every : std::max<int64_t>(1, len.total_steps / 50)),
      eval_data_(open_eval_data(o_, m, data_.num_labels)),
      comm_(Comm::world()),
      model_(o_, m, data_) {
  model_.broadcast_weights();
  start_log();
  if (comm_.is_root()) print_header();
}

// Resuming: the position, the optimizer's moments and the log up to the checkpoint; else a fresh log.
void TrainRun::start_log() {
  if (!comm_.is_root()) {  // the other ranks restore the position and the optimizer only
    if (resumed_) {
      pos_ = resumed_->pos;
      model_.optimizer().load_state(read_optimizer_state(o_.resume_dir), pos_.step);
    }
    return;
  }
  fs::create_directories(o_.output);
  const fs::path log_path = fs::path(o_.output) / "log.jsonl";
  if (resumed_) {
    pos_ = resumed_->pos;
    print_resuming(o_, *resumed_, len_.total_steps);
    warn_if_steps_differ(o_, *resumed_);
    model_.optimizer().load_state(read_optimizer_state(o_.resume_dir), pos_.step);
    std::string kept;  // earlier curve points, for the plot
    curves_ = read_training_log((fs::path(o_.resume_dir) / "log.jsonl").string(), pos_.step, &kept);
    std::ofstream(log_path) << kept;  // the log up to the checkpoint, continued below
  } else {
    std::ofstream(log_path).flush();  // a fresh log
  }
  log_.open(log_path, std::ios::app);
}

void TrainRun::print_header() {
  const ConvNextConfig& c = model_.config();
  std::fprintf(stderr, "training %s (%lld parameters, %lld labels) on %s: %lld examples, %lld steps of %lld x %lld, "
                       "lr %g (%s, warmup %lld), weight decay %g%s, %s, %d threads\n",
               c.variant_name().empty() ? "ConvNeXt" : ("ConvNeXt-" + c.variant_name()).c_str(),
               static_cast<long long>(model_.parameter_count()), static_cast<long long>(c.num_labels()), o_.data.c_str(),
               static_cast<long long>(data_.source->size()), static_cast<long long>(len_.total_steps),
               static_cast<long long>(o_.batch_size), static_cast<long long>(o_.grad_accum), o_.lr, o_.scheduler.c_str(),
               static_cast<long long>(o_.warmup_steps), o_.weight_decay, o_.weight_decay_all ? " (all parameters)" : "",
               o_.precision == DType::BF16 ? "bf16 mixed precision" : "fp32", num_threads());
}

int TrainRun::run() {
  SigintGuard sigint;
  progress_ = Progress();
  start_ = std::chrono::steady_clock::now();
  model_.grads().zero();
  int exit_status = 0;
  while (pos_.step < len_.total_steps && exit_status == 0) exit_status = run_epoch();
  return finish(exit_status);
}

// One epoch, or what is left of it: 0, or 130 when Ctrl-C stopped it (with a checkpoint saved).
int TrainRun::run_epoch() {
  Loader loader(*data_.source, loader_options(o_), pos_.epoch, pos_.batch);
  if (train_batches(loader)) {
    end_epoch(loader);
    return 0;
  }
  progress_.newline();
  save();
  std::fprintf(stderr, "interrupted at step %lld: saved a resumable checkpoint in %s (continue with --resume %s)\n",
               static_cast<long long>(pos_.step), o_.output.c_str(), o_.output.c_str());
  return 130;
}

// Trains on the loader's batches until the epoch or the run ends; false when Ctrl-C stopped it.
bool TrainRun::train_batches(Loader& loader) {
  Batch b;
  Group g{pos_.batch};
  while (pos_.step < len_.total_steps && loader.next(b)) {
    if (!accumulate(b, g)) continue;
    model_.finish_sync();  // data parallel: the gradients averaged over the ranks
    sync_wait_s_ += model_.last_sync_wait_seconds();
    reduce_group(g);
    optimizer_step(g);
    g = Group{pos_.batch};  // after the step: a --save-every checkpoint is not timed
    if (interrupted()) return false;
  }
  return true;
}

// Forward and backward of one micro-batch; true when it completes the optimizer step's group.
bool TrainRun::accumulate(const Batch& b, Group& g) {
  // The epoch's last group may be short; its losses are still averaged over its own size.
  const int64_t group_size = std::min(o_.grad_accum, len_.batches_per_epoch - g.first);
  // Stochastic depth: each sample's from (seed, epoch, its index), whatever batch or rank it is in,
  // so a resumed run, or one on another number of ranks, draws the same masks.
  const uint64_t drop_seed = sampling::example_seed(o_.seed ^ 0x6a09e667f3bcc909ull, pos_.epoch, 0);
  const bool last = g.done + 1 >= group_size;
  const float loss = model_.forward_backward(b, 1.0f / static_cast<float>(group_size), drop_seed, last);
  ++g.done;
  g.images += b.pixel_values.dim(0);
  if (!std::isfinite(loss)) on_nonfinite_loss(loss, g);
  g.loss += loss / static_cast<double>(group_size);
  return g.done >= group_size;
}

// A NaN or infinite loss stops the run, unless --skip-nan: then its step changes no weight.
void TrainRun::on_nonfinite_loss(float loss, const Group& g) {
  if (!o_.skip_nan)
    throw Error("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") + " at step " +
                std::to_string(pos_.step + 1) + " (epoch " + std::to_string(pos_.epoch + 1) + ", batch " +
                std::to_string(g.first + g.done) + "): lower --lr, check the data, or pass --skip-nan to skip such batches");
  ++stats_.skipped_nan;
  progress_.newline();
  std::fprintf(stderr, "warning: the loss is not finite at step %lld (epoch %lld, batch %lld); skipping this step (--skip-nan)\n",
               static_cast<long long>(pos_.step + 1), static_cast<long long>(pos_.epoch + 1),
               static_cast<long long>(g.first + g.done));
}

// Data parallel: the step's loss is the mean over the ranks' (equal) batches, its images their sum.
void TrainRun::reduce_group(Group& g) {
  if (!comm_.distributed()) return;
  double v[2] = {g.loss, static_cast<double>(g.images)};
  comm_.allreduce_sum(v, 2);
  g.loss = v[0] / comm_.size();
  g.images = static_cast<int64_t>(v[1]);
}

// Ctrl-C on any rank (mpirun passes it to all) stops every rank after the same step.
bool TrainRun::interrupted() {
  int64_t flag = g_interrupted ? 1 : 0;
  if (comm_.distributed()) comm_.allreduce_sum(&flag, 1);
  return flag > 0;
}

void TrainRun::optimizer_step(const Group& g) {
  const bool finite = std::isfinite(g.loss);
  double norm = 0, lr = 0;
  if (finite) {
    if (!o_.save_grads.empty() && !saved_grads_ && comm_.is_root()) save_first_gradients();
    // clip_grad_norm_, AdamW and zero_grad, the last two in one pass over the gradients.
    norm = model_.grads().global_norm();
    lr = schedule_.at(pos_.step);
    model_.optimizer().step(model_.grads(), lr, clip_coefficient(norm, o_.max_grad_norm), /*zero_grads=*/true);
  } else {
    model_.grads().zero();
  }
  ++pos_.step;
  pos_.batch = g.first + g.done;
  stats_.add(finite, g.loss, norm, g.images, seconds_since(g.start));
  if (pos_.step % log_every_ == 0 || pos_.step == len_.total_steps) log_step(lr);
  if (comm_.is_root()) show_progress(g.loss, lr);
  if (o_.save_every > 0 && pos_.step % o_.save_every == 0 && pos_.step < len_.total_steps) save();
}

void TrainRun::save_first_gradients() {
  const Gradients& g = model_.grads();
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < g.names.size(); ++i) out.emplace_back(g.names[i], g.grads[i]);
  save_tensors(o_.save_grads, out);
  saved_grads_ = true;
}

// One line of log.jsonl, also handed to TrainOptions::on_log (a notebook's progress callback).
void TrainRun::write_log(const json& j) {
  if (!comm_.is_root()) return;
  const std::string line = j.dump();
  log_ << line << "\n" << std::flush;
  if (o_.on_log) o_.on_log(line);
}

// A log.jsonl line: the means over the steps since the last line (none when all were skipped).
void TrainRun::log_step(double lr) {
  StepWindow& w = stats_.window;
  if (w.steps > 0) {
    const double steps = static_cast<double>(w.steps);
    const double epoch = static_cast<double>(pos_.epoch) + static_cast<double>(pos_.batch) / static_cast<double>(len_.batches_per_epoch);
    const json j = {{"step", pos_.step},
                    {"epoch", epoch},
                    {"loss", w.loss / steps},
                    {"lr", lr},
                    {"grad_norm", w.norm / steps},
                    {"images_per_s", w.images / std::max(w.seconds, 1e-9)}};
    write_log(j);
    curves_.loss.push_back({static_cast<double>(pos_.step), w.loss / steps});
  }
  w = StepWindow{};
}

void TrainRun::show_progress(double loss, double lr) {
  const double eta = static_cast<double>(len_.total_steps - pos_.step) * static_cast<double>(o_.batch_size * o_.grad_accum) /
                     std::max(stats_.ema_images_per_s, 1e-9);
  char line[256];
  std::snprintf(line, sizeof line, "epoch %lld  step %lld/%lld  loss %.4f  lr %.3g  %.1f img/s  ETA %s",
                static_cast<long long>(pos_.epoch + 1), static_cast<long long>(pos_.step), static_cast<long long>(len_.total_steps),
                loss, lr, stats_.ema_images_per_s, duration_str(eta).c_str());
  progress_.update(line, pos_.step == len_.total_steps);
}

// After the epoch's batches, or after the last step inside an epoch: evaluation.
void TrainRun::end_epoch(Loader& loader) {
  Batch b;
  const bool inside = pos_.batch < len_.batches_per_epoch && loader.next(b);  // --steps ended inside an epoch
  progress_.newline();
  if (inside) {
    evaluate_now(true);
    return;
  }
  pos_.epoch += 1;
  pos_.batch = 0;
  if (loader.skipped_total() > 0)
    std::fprintf(stderr, "epoch %lld: %lld unreadable examples skipped\n", static_cast<long long>(pos_.epoch),
                 static_cast<long long>(loader.skipped_total()));
  evaluate_now(pos_.step == len_.total_steps);
}

// The evaluation data's loss (and accuracy) now: in log.jsonl, the curves and on stderr.
void TrainRun::evaluate_now(bool final_eval) {
  if (!eval_data_) return;
  const EvalResult er = model_.evaluate(*eval_data_, eval_options(o_));
  json j = {{"step", pos_.step}, {"epoch", pos_.epoch}, {"eval_loss", er.loss}, {"eval_examples", er.count}};
  if (er.classification) {
    j["eval_accuracy"] = er.top1;
    j["eval_top5"] = er.top5;
    curves_.eval_accuracy.push_back({static_cast<double>(pos_.step), er.top1});
  }
  if (final_eval) j["final"] = true;
  curves_.eval_loss.push_back({static_cast<double>(pos_.step), er.loss});
  write_log(j);
  if (!comm_.is_root()) return;
  if (er.classification)
    std::fprintf(stderr, "eval at step %lld: loss %.4f, top-1 %.4f, top-5 %.4f\n", static_cast<long long>(pos_.step),
                 er.loss, er.top1, er.top5);
  else
    std::fprintf(stderr, "eval at step %lld: loss %.4f\n", static_cast<long long>(pos_.step), er.loss);
}

// A checkpoint transformers loads, what --resume needs beside it, and the plot so far.
void TrainRun::save() {
  if (!comm_.is_root()) return;
  const fs::path dir = o_.output;
  model_.save(o_.output);
  proc_.save_pretrained(o_.output);
  save_tensors((dir / "optimizer.safetensors").string(), model_.optimizer().state_tensors());
  write_trainer_state(o_.output, pos_, schedule_, o_);
  write_training_svg((dir / "training.svg").string(), curves_);
}

// The last checkpoint (Ctrl-C saved its own) and the summary: log.jsonl, stderr, --json's stdout.
int TrainRun::finish(int exit_status) {
  if (exit_status == 0) save();
  const double secs = seconds_since(start_);
  const double images_per_s = static_cast<double>(stats_.images) / std::max(secs, 1e-9);
  json summary = {{"done", exit_status == 0},          {"steps", pos_.step},
                  {"seconds", secs},                   {"images", stats_.images},
                  {"images_per_s", images_per_s},      {"skipped_nan_steps", stats_.skipped_nan},
                  {"peak_rss_mb", peak_rss_mb()},      {"dtype", dtype_short_name(o_.precision)}};
  if (resumed_) summary["resumed"] = resumed_json(o_, *resumed_);
  if (comm_.distributed()) {
    summary["ranks"] = comm_.size();
    // What the overlap left: the time spent waiting for all-reduces once the backward had ended.
    summary["allreduce_wait_seconds"] = sync_wait_s_;
  }
  write_log(summary);
  if (!comm_.is_root()) return exit_status;
  std::fprintf(stderr, "%s %lld steps in %s (%.1f img/s, peak RSS %.0f MB); wrote %s\n",
               exit_status == 0 ? "trained" : "stopped after", static_cast<long long>(pos_.step), duration_str(secs).c_str(),
               images_per_s, peak_rss_mb(), o_.output.c_str());
  if (o_.json) std::printf("%s\n", summary.dump().c_str());
  return exit_status;
}

}  // namespace

namespace {
int run_training_here(const TrainOptions& options) {
  TrainOptions o = options;
  std::optional<Resumed> resumed = settle_options(o);
  if (resumed) check_world_size(*resumed, Comm::world().size());
  const ModelSource model = choose_model(o, resumed.has_value());
  TrainingData data = open_training_data(o, model);
  const RunLength len = plan_length(o, resumed, *data.source);
  if (resumed && resumed->pos.step >= len.total_steps) return report_finished(o, *resumed, len.total_steps);
  TrainRun run(std::move(o), std::move(resumed), model, std::move(data), len);
  return run.run();
}
}  // namespace

int run_training(const TrainOptions& options) {
  Comm& comm = Comm::world();
  if (!comm.distributed()) return run_training_here(options);
  // Each rank's default threads: this machine's CPUs shared among its ranks.
  if (options.threads == 0) set_num_threads(std::max(1, parallel::available_cpus() / comm.local_size()));
  try {
    return run_training_here(options);
  } catch (const std::exception& e) {  // one rank's failure ends them all, with its message
    comm.abort("convnext train: rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size()) + ": error: " +
               e.what());
  }
  return 1;  // not reached: abort ends every rank (GCC does not see through the virtual's [[noreturn]])
}

}  // namespace convnext::train
