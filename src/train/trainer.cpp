// The training loop. One optimizer step = grad_accum micro-batches (forward + backward each,
// gradients added, the loss of each scaled by 1/group size), then clipping by global norm, the
// scheduled learning rate, AdamW, zero_grad — the order of transformers' Trainer.
//
// Everything random is seeded: the data order by (seed, epoch), each example's augmentation by
// (seed, epoch, index), stochastic depth by (seed, epoch, batch). A run stopped by Ctrl-C (or
// --save-every) saves the model, the optimizer moments and the position (epoch, batch), so
// --resume continues the same sequence of steps.
#include "train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "image/processor_choice.h"
#include "io/hub_cache.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/network.h"
#include "train/backprop.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/optimizer.h"

namespace convnext::train {

namespace fs = std::filesystem;
using detail::Network;
using json = nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::string duration_str(double s) {
  char b[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

// The processor for the model: --processor, else the checkpoint's (transformers' class defaults
// when it has none, as `classify` would run it), else the one a fresh model ships with.
ConvNextImageProcessor choose_processor(const TrainOptions& o, const ConvNextConfig& cfg, const std::string& model_dir) {
  if (!o.processor_path.empty()) return ConvNextImageProcessor::from_pretrained(o.processor_path);
  if (!model_dir.empty()) return ConvNextImageProcessor::from_pretrained(model_dir);
  return image::processor_for_new_model(cfg, o.config_path);
}

struct Position {
  int64_t step = 0, epoch = 0, batch = 0;  // optimizer steps taken; where the next batch comes from
};

void save_checkpoint(Network& net, const ConvNextImageProcessor& proc, const AdamW& opt, const Position& pos,
                     int64_t total_steps, const TrainOptions& o, const std::string& dir) {
  detail::save_network(net, dir);
  proc.save_pretrained(dir);
  save_tensors((fs::path(dir) / "optimizer.safetensors").string(), opt.state_tensors());
  json st = {{"global_step", pos.step},     {"epoch", pos.epoch},         {"batch_in_epoch", pos.batch},
             {"total_steps", total_steps},  {"seed", o.seed},             {"batch_size", o.batch_size},
             {"grad_accum", o.grad_accum},  {"lr", o.lr},                 {"lr_scheduler", o.scheduler},
             {"warmup_steps", o.warmup_steps}, {"weight_decay", o.weight_decay}, {"weight_decay_all", o.weight_decay_all},
             {"optimizer", "torch.optim.AdamW"}, {"adam_betas", {0.9, 0.999}}, {"adam_epsilon", 1e-8},
             {"max_grad_norm", o.max_grad_norm}, {"data", o.data}};
  std::ofstream f(fs::path(dir) / "trainer_state.json");
  f << st.dump(2) << "\n";
  if (!f) throw Error(dir + "/trainer_state.json: write failed");
}

// Progress on stderr: rewritten in place on a terminal, a line every 30 s otherwise.
class Progress {
 public:
  Progress() : tty_(isatty(2) != 0), last_(std::chrono::steady_clock::now()) {}
  void update(const std::string& line, bool force = false) {
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last_).count();
    if (!force && dt < (tty_ ? 0.25 : 30.0)) return;
    last_ = now;
    if (tty_) std::fprintf(stderr, "\r\033[K%s", line.c_str());
    else std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    dirty_ = tty_;
  }
  void newline() {
    if (dirty_) std::fputc('\n', stderr);
    dirty_ = false;
  }

 private:
  bool tty_, dirty_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

int run_training(const TrainOptions& o) {
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1");
  if (o.grad_accum < 1) throw Error("--grad-accum must be >= 1");
  if (o.output.empty()) throw Error("--output DIR is required");
  if (o.data.empty()) throw Error("--data PATH is required");
  if (o.threads > 0) set_num_threads(o.threads);

  // ---- the model's config, processor and data ----
  const bool resuming = !o.resume_dir.empty();
  // A hub id ("org/name[@rev]") resolves to its snapshot in the local Hugging Face cache.
  const std::string model_dir = resuming ? o.resume_dir : o.model_dir.empty() ? "" : io::resolve_model_path(o.model_dir);
  const int sources = !o.model_dir.empty() + !o.config_path.empty() + !o.arch.empty();
  if (!resuming && sources != 1) throw Error("give exactly one of --model DIR, --config CONFIG.json, --arch NAME (or --resume DIR)");
  // Resuming, the checkpoint is the model (the command's --model/--config/--arch are ignored).
  ConvNextConfig cfg = !model_dir.empty() ? config_of_checkpoint(model_dir)
                       : !o.config_path.empty() ? ConvNextConfig::from_file(o.config_path)
                                                : ConvNextConfig::preset(o.arch, 2);
  const ConvNextImageProcessor proc = choose_processor(o, cfg, model_dir);
  // Labels: --num-labels; for a checkpoint its own, or with --ignore-mismatched-sizes the data's
  // classes; for a fresh model the data's classes, else the config's (--config). When the count
  // does not depend on the data, the data is opened, and its labels checked against it, once.
  const bool fresh = model_dir.empty();
  const int64_t known = o.num_labels ? *o.num_labels : (!fresh && !o.ignore_mismatched_sizes) ? cfg.num_labels() : 0;
  std::unique_ptr<DataSource> data = DataSource::open(o.data, proc, cfg.num_channels, known);
  const std::vector<std::string> classes = data->class_names();
  int64_t num_labels = known;
  if (!known) {
    if (!classes.empty()) num_labels = static_cast<int64_t>(classes.size());
    else if (!o.arch.empty() && !data->float_labels())
      throw Error(o.data + ": the data has no class names; give --num-labels N");
    else num_labels = cfg.num_labels();
  }
  if (!classes.empty() && static_cast<int64_t>(classes.size()) != num_labels)
    throw Error(o.data + " has " + std::to_string(classes.size()) + " classes, the model " + std::to_string(num_labels) +
                " labels" + (fresh ? "" : " (pass --ignore-mismatched-sizes to replace the classifier)"));
  if (!known) data = DataSource::open(o.data, proc, cfg.num_channels, num_labels);  // the count just decided
  std::unique_ptr<DataSource> eval_data;
  if (!o.eval_data.empty())
    eval_data = DataSource::open(o.eval_data, proc, cfg.num_channels, num_labels);

  std::shared_ptr<Network> net;
  if (fresh) {
    cfg.set_num_labels(num_labels);
    cfg.architectures = {"ConvNextForImageClassification"};
    if (o.drop_path_rate) cfg.drop_path_rate = *o.drop_path_rate;
    net = std::make_shared<Network>(cfg, Architecture::ForImageClassification);
    net->init_weights(o.seed);
  } else {
    LoadOptions lo;
    lo.inference_only = false;
    lo.ignore_mismatched_sizes = o.ignore_mismatched_sizes;
    if (num_labels != cfg.num_labels()) lo.num_labels = num_labels;
    lo.seed = o.seed;
    net = Network::load(model_dir, lo, Architecture::ForImageClassification);
    if (o.drop_path_rate) net->config.drop_path_rate = *o.drop_path_rate;
    for (const auto& w : net->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  }
  // Name the labels after the data's classes when the model only has generic names.
  if (!classes.empty()) {
    bool generic = true;
    for (const auto& [id, name] : net->config.id2label) generic = generic && name == "LABEL_" + std::to_string(id);
    if (generic || fresh)
      for (size_t i = 0; i < classes.size(); ++i) net->config.id2label[static_cast<int64_t>(i)] = classes[i];
  }
  if (data->float_labels() && !net->config.problem_type)
    net->config.problem_type = net->config.num_labels() == 1 ? "regression" : "multi_label_classification";

  // ---- schedule ----
  LoaderOptions lopt;
  lopt.batch_size = o.batch_size;
  lopt.shuffle = o.shuffle;
  lopt.augment.enabled = o.augment;
  lopt.augment.scale_min = o.crop_scale_min;
  lopt.augment.hflip = o.hflip;
  lopt.seed = o.seed;
  lopt.workers = std::max(1, o.workers);
  const int64_t batches_per_epoch = (data->size() + o.batch_size - 1) / o.batch_size;
  if (batches_per_epoch == 0) throw Error(o.data + ": no examples");
  const int64_t steps_per_epoch = (batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
  int64_t total_steps = o.steps ? *o.steps : o.epochs.value_or(3) * steps_per_epoch;  // the Trainer's 3 epochs
  if (total_steps < 1) throw Error("nothing to do: --steps / --epochs must be >= 1");
  const int64_t log_every = o.log_every > 0 ? o.log_every : std::max<int64_t>(1, total_steps / 50);

  Gradients grads(*net);
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decay_all = o.weight_decay_all;
  AdamW opt(grads, ao);
  TrainGraph graph(*net);
  Position pos;
  TrainingCurves curves;
  fs::create_directories(o.output);
  const fs::path log_path = fs::path(o.output) / "log.jsonl";
  if (resuming) {
    const json st = io::read_json_file((fs::path(o.resume_dir) / "trainer_state.json").string());
    try {
      pos.step = st.at("global_step").get<int64_t>();
      pos.epoch = st.at("epoch").get<int64_t>();
      pos.batch = st.at("batch_in_epoch").get<int64_t>();
      if (!o.steps && !o.epochs) total_steps = st.at("total_steps").get<int64_t>();
      if (st.at("batch_size").get<int64_t>() != o.batch_size || st.at("grad_accum").get<int64_t>() != o.grad_accum ||
          st.at("seed").get<uint64_t>() != o.seed)
        std::fprintf(stderr, "warning: --batch-size/--grad-accum/--seed differ from the interrupted run's; the "
                             "continuation will not be the same sequence of steps\n");
    } catch (const json::exception& e) {
      throw Error(o.resume_dir + "/trainer_state.json: " + e.what());
    }
    auto state = io::SafetensorsFile::open((fs::path(o.resume_dir) / "optimizer.safetensors").string());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& info : state->tensors()) tensors.emplace_back(info.name, state->get_f32(info.name));
    opt.load_state(tensors, pos.step);
    // Earlier curve points for the plot.
    std::string kept;
    curves = read_training_log((fs::path(o.resume_dir) / "log.jsonl").string(), pos.step, &kept);
    std::ofstream(log_path) << kept;  // the log up to the checkpoint, continued below
  } else {
    std::ofstream(log_path).flush();  // a fresh log
  }
  std::ofstream log(log_path, std::ios::app);

  std::fprintf(stderr, "training %s (%lld parameters, %lld labels) on %s: %lld examples, %lld steps of %lld x %lld, "
                       "lr %g (%s, warmup %lld), weight decay %g%s, %d threads\n",
               net->config.variant_name().empty() ? "ConvNeXt" : ("ConvNeXt-" + net->config.variant_name()).c_str(),
               static_cast<long long>(net->parameter_count), static_cast<long long>(net->config.num_labels()),
               o.data.c_str(), static_cast<long long>(data->size()), static_cast<long long>(total_steps),
               static_cast<long long>(o.batch_size), static_cast<long long>(o.grad_accum), o.lr, o.scheduler.c_str(),
               static_cast<long long>(o.warmup_steps), o.weight_decay, o.weight_decay_all ? " (all parameters)" : "",
               num_threads());

  auto run_eval = [&](bool final_eval) {
    if (!eval_data) return;
    net->prepare(false);
    const EvalResult er = evaluate(*net, *eval_data, std::max<int64_t>(o.batch_size, 32));
    json j = {{"step", pos.step}, {"epoch", pos.epoch}, {"eval_loss", er.loss}, {"eval_examples", er.count}};
    if (er.classification) {
      j["eval_accuracy"] = er.top1;
      j["eval_top5"] = er.top5;
      curves.eval_accuracy.push_back({static_cast<double>(pos.step), er.top1});
    }
    if (final_eval) j["final"] = true;
    curves.eval_loss.push_back({static_cast<double>(pos.step), er.loss});
    log << j.dump() << "\n" << std::flush;
    if (er.classification)
      std::fprintf(stderr, "eval at step %lld: loss %.4f, top-1 %.4f, top-5 %.4f\n", static_cast<long long>(pos.step),
                   er.loss, er.top1, er.top5);
    else
      std::fprintf(stderr, "eval at step %lld: loss %.4f\n", static_cast<long long>(pos.step), er.loss);
  };
  auto save = [&] {
    save_checkpoint(*net, proc, opt, pos, total_steps, o, o.output);
    write_training_svg((fs::path(o.output) / "training.svg").string(), curves);
  };

  g_interrupted = false;
  auto previous_handler = std::signal(SIGINT, on_sigint);
  struct Restore {
    decltype(previous_handler) h;
    ~Restore() { std::signal(SIGINT, h); }
  } restore{previous_handler};

  Progress progress;
  const auto t_start = std::chrono::steady_clock::now();
  double window_loss = 0, window_norm = 0, window_images = 0, window_s = 0, ema_ips = 0;
  int64_t window_steps = 0, skipped_nan = 0, images_total = 0;
  bool saved_grads = false;
  int exit_status = 0;
  grads.zero();

  while (pos.step < total_steps) {
    Loader loader(*data, lopt, pos.epoch, pos.batch);
    Batch b;
    int64_t in_group = 0, group_first = pos.batch;
    double group_loss = 0;
    auto t_group = std::chrono::steady_clock::now();
    int64_t group_images = 0;
    bool stop = false;
    while (pos.step < total_steps && loader.next(b)) {
      const int64_t remaining = batches_per_epoch - group_first;
      const int64_t group_size = std::min(o.grad_accum, remaining);
      // Stochastic depth of this batch: its own seed, so a resumed run draws the same masks.
      std::mt19937_64 rng(sampling::example_seed(o.seed ^ 0x6a09e667f3bcc909ull, pos.epoch, group_first + in_group));
      const auto r = graph.forward_backward(b.pixel_values, b.labels, grads, 1.0f / static_cast<float>(group_size), &rng);
      ++in_group;
      group_images += b.pixel_values.dim(0);
      if (!std::isfinite(r.loss)) {
        if (!o.skip_nan)
          throw Error("the loss is " + std::string(std::isnan(r.loss) ? "NaN" : "infinite") + " at step " +
                      std::to_string(pos.step + 1) + " (epoch " + std::to_string(pos.epoch + 1) + ", batch " +
                      std::to_string(group_first + in_group) + "): lower --lr, check the data, or pass --skip-nan to skip such batches");
        ++skipped_nan;
        progress.newline();
        std::fprintf(stderr, "warning: the loss is not finite at step %lld (epoch %lld, batch %lld); skipping this step (--skip-nan)\n",
                     static_cast<long long>(pos.step + 1), static_cast<long long>(pos.epoch + 1),
                     static_cast<long long>(group_first + in_group));
      }
      group_loss += r.loss / static_cast<double>(group_size);
      if (in_group < group_size) continue;

      // ---- one optimizer step ----
      const bool bad = !std::isfinite(group_loss);
      double norm = 0;
      double lr = 0;
      if (!bad) {
        if (!o.save_grads.empty() && !saved_grads) {
          std::vector<std::pair<std::string, Tensor>> out;
          for (size_t i = 0; i < grads.names.size(); ++i) out.emplace_back(grads.names[i], grads.grads[i]);
          save_tensors(o.save_grads, out);
          saved_grads = true;
        }
        norm = clip_grad_norm(grads, o.max_grad_norm);
        lr = scheduled_lr(o.scheduler, o.lr, pos.step, o.warmup_steps, total_steps);
        opt.step(grads, lr);
      }
      grads.zero();
      ++pos.step;
      pos.batch = group_first + in_group;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_group).count();
      images_total += group_images;
      const double ips = static_cast<double>(group_images) / std::max(dt, 1e-9);
      ema_ips = ema_ips == 0 ? ips : 0.9 * ema_ips + 0.1 * ips;
      if (!bad) {
        window_loss += group_loss;
        window_norm += norm;
        ++window_steps;
      }
      window_images += static_cast<double>(group_images);
      window_s += dt;
      if (pos.step % log_every == 0 || pos.step == total_steps) {
        if (window_steps > 0) {
          const json j = {{"step", pos.step},
                          {"epoch", static_cast<double>(pos.epoch) + static_cast<double>(pos.batch) / static_cast<double>(batches_per_epoch)},
                          {"loss", window_loss / static_cast<double>(window_steps)},
                          {"lr", lr},
                          {"grad_norm", window_norm / static_cast<double>(window_steps)},
                          {"images_per_s", window_images / std::max(window_s, 1e-9)}};
          log << j.dump() << "\n" << std::flush;
          curves.loss.push_back({static_cast<double>(pos.step), window_loss / static_cast<double>(window_steps)});
        }
        window_loss = window_norm = window_images = window_s = 0;
        window_steps = 0;
      }
      char line[256];
      const double eta = static_cast<double>(total_steps - pos.step) * static_cast<double>(o.batch_size * o.grad_accum) / std::max(ema_ips, 1e-9);
      std::snprintf(line, sizeof line, "epoch %lld  step %lld/%lld  loss %.4f  lr %.3g  %.1f img/s  ETA %s",
                    static_cast<long long>(pos.epoch + 1), static_cast<long long>(pos.step), static_cast<long long>(total_steps),
                    group_loss, lr, ema_ips, duration_str(eta).c_str());
      progress.update(line, pos.step == total_steps);
      if (o.save_every > 0 && pos.step % o.save_every == 0 && pos.step < total_steps) save();
      in_group = 0;
      group_first = pos.batch;
      group_loss = 0;
      group_images = 0;
      t_group = std::chrono::steady_clock::now();
      if (g_interrupted) {
        stop = true;
        break;
      }
    }
    if (stop) {
      progress.newline();
      save();
      std::fprintf(stderr, "interrupted at step %lld: saved a resumable checkpoint in %s (continue with --resume %s)\n",
                   static_cast<long long>(pos.step), o.output.c_str(), o.output.c_str());
      exit_status = 130;
      break;
    }
    if (pos.batch >= batches_per_epoch || !loader.next(b)) {  // the epoch is over
      pos.epoch += 1;
      pos.batch = 0;
      progress.newline();
      if (loader.skipped_total() > 0)
        std::fprintf(stderr, "epoch %lld: %lld unreadable examples skipped\n", static_cast<long long>(pos.epoch),
                     static_cast<long long>(loader.skipped_total()));
      run_eval(pos.step == total_steps);
    } else {
      progress.newline();
      run_eval(true);  // --steps ended inside an epoch
    }
  }
  if (exit_status == 0) save();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  const json summary = {{"done", exit_status == 0},    {"steps", pos.step},
                        {"seconds", secs},             {"images", images_total},
                        {"images_per_s", static_cast<double>(images_total) / std::max(secs, 1e-9)},
                        {"skipped_nan_steps", skipped_nan}, {"peak_rss_mb", peak_rss_mb()}};
  log << summary.dump() << "\n";
  std::fprintf(stderr, "%s %lld steps in %s (%.1f img/s, peak RSS %.0f MB); wrote %s\n",
               exit_status == 0 ? "trained" : "stopped after", static_cast<long long>(pos.step), duration_str(secs).c_str(),
               static_cast<double>(images_total) / std::max(secs, 1e-9), peak_rss_mb(), o.output.c_str());
  if (o.json) std::printf("%s\n", summary.dump().c_str());
  return exit_status;
}

}  // namespace convnext::train
