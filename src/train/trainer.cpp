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
#include <functional>
#include <memory>
#include <set>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "io/hub_cache.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/plan.h"
#include "train/backprop.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/optimizer.h"

namespace convnext::train {

namespace fs = std::filesystem;
using detail::Parameters;
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
  return ConvNextImageProcessor::for_new_model(cfg, o.config_path);
}

struct Position {
  int64_t step = 0, epoch = 0, batch = 0;  // optimizer steps taken; where the next batch comes from
};

// A setting a run saves in trainer_state.json and --resume restores, unless the command line
// gives it: its flag, its key in the file, and how to read and write it in TrainOptions.
// (Threads and loader workers only change the speed, not the numbers: they are not restored.)
struct Setting {
  const char* flag;
  const char* key;
  std::function<json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const json&)> set;
};

template <typename T>
Setting setting(const char* flag, const char* key, T TrainOptions::*field) {
  return {flag, key, [field](const TrainOptions& o) { return json(o.*field); },
          [field](TrainOptions& o, const json& j) { o.*field = j.get<T>(); }};
}

// A data path, saved absolute so that the run resumes from any working directory.
Setting path_setting(const char* flag, const char* key, std::string TrainOptions::*field) {
  Setting s = setting(flag, key, field);
  s.get = [field](const TrainOptions& o) { return json((o.*field).empty() ? "" : fs::absolute(o.*field).string()); };
  return s;
}

const std::vector<Setting>& saved_settings() {
  static const std::vector<Setting> all = {
      path_setting("data", "data", &TrainOptions::data),
      path_setting("eval-data", "eval_data", &TrainOptions::eval_data),
      setting("batch-size", "batch_size", &TrainOptions::batch_size),
      setting("grad-accum", "grad_accum", &TrainOptions::grad_accum),
      setting("lr", "lr", &TrainOptions::lr),
      setting("lr-scheduler", "lr_scheduler", &TrainOptions::scheduler),
      setting("warmup-steps", "warmup_steps", &TrainOptions::warmup_steps),
      setting("weight-decay", "weight_decay", &TrainOptions::weight_decay),
      setting("weight-decay-all", "weight_decay_all", &TrainOptions::weight_decay_all),
      setting("max-grad-norm", "max_grad_norm", &TrainOptions::max_grad_norm),
      setting("seed", "seed", &TrainOptions::seed),
      setting("no-shuffle", "shuffle", &TrainOptions::shuffle),
      setting("no-augment", "augment", &TrainOptions::augment),
      setting("crop-scale", "crop_scale_min", &TrainOptions::crop_scale_min),
      setting("no-flip", "hflip", &TrainOptions::hflip),
      setting("skip-nan", "skip_nan", &TrainOptions::skip_nan),
      setting("save-every", "save_every", &TrainOptions::save_every),
      setting("log-every", "log_every", &TrainOptions::log_every),
  };
  return all;
}

void save_checkpoint(Parameters& net, const ConvNextImageProcessor& proc, const AdamW& opt, const Position& pos,
                     const LrSchedule& schedule, const TrainOptions& o, const std::string& dir) {
  detail::save_parameters(net, dir);
  proc.save_pretrained(dir);
  save_tensors((fs::path(dir) / "optimizer.safetensors").string(), opt.state_tensors());
  json st = {{"global_step", pos.step},           {"epoch", pos.epoch},       {"batch_in_epoch", pos.batch},
             {"total_steps", schedule.total},      {"optimizer", "torch.optim.AdamW"},
             {"adam_betas", {0.9, 0.999}},         {"adam_epsilon", 1e-8}};
  for (const Setting& s : saved_settings()) st[s.key] = s.get(o);
  if (schedule.anchor_step >= 0) {  // the schedule was continued over a new length (see continue_schedule)
    st["lr_anchor_step"] = schedule.anchor_step;
    st["lr_anchor_lr"] = schedule.anchor_lr;
  }
  std::ofstream f(fs::path(dir) / "trainer_state.json");
  f << st.dump(2) << "\n";
  if (!f) throw Error(dir + "/trainer_state.json: write failed");
}

// ---- resuming ----

struct Resumed {
  json state;     // trainer_state.json
  Position pos;
  json restored;  // the settings taken from the run: key -> value
};

// Reads the run in o.resume_dir and gives `o` every saved setting the command line did not give.
Resumed read_resumed(TrainOptions& o) {
  const std::string path = (fs::path(o.resume_dir) / "trainer_state.json").string();
  Resumed r;
  r.state = io::read_json_file(path);
  r.restored = json::object();
  try {
    r.pos = {r.state.at("global_step").get<int64_t>(), r.state.at("epoch").get<int64_t>(),
             r.state.at("batch_in_epoch").get<int64_t>()};
  } catch (const json::exception& e) {
    throw Error(path + ": " + e.what());
  }
  for (const Setting& s : saved_settings()) {
    if (o.given.count(s.flag) || !r.state.contains(s.key)) continue;
    try {
      s.set(o, r.state[s.key]);
    } catch (const json::exception&) {
      throw Error(path + ": '" + s.key + "' has the wrong type: " + r.state[s.key].dump());
    }
    r.restored[s.key] = r.state[s.key];
  }
  if (o.output.empty()) o.output = o.resume_dir;
  return r;
}

// The run's length in optimizer steps: --steps, --epochs, the resumed run's, else the Trainer's 3 epochs.
int64_t run_length(const TrainOptions& o, Resumed* r, int64_t steps_per_epoch) {
  if (o.steps) return *o.steps;
  if (o.epochs) return *o.epochs * steps_per_epoch;
  if (r && r->state.contains("total_steps")) {
    r->restored["total_steps"] = r->state["total_steps"];
    return r->state["total_steps"].get<int64_t>();
  }
  return 3 * steps_per_epoch;
}

// The schedule the resumed run followed (its anchor too, when it was itself continued).
LrSchedule saved_schedule(const json& st) {
  LrSchedule s{st.value("lr_scheduler", std::string("linear")), st.value("lr", 5e-5), st.value("warmup_steps", int64_t{0}),
               st.value("total_steps", int64_t{1})};
  s.anchor_step = st.value("lr_anchor_step", int64_t{-1});
  s.anchor_lr = st.value("lr_anchor_lr", 0.0);
  return s;
}

json resumed_json(const TrainOptions& o, const Resumed& r) {
  return {{"from", o.resume_dir}, {"step", r.pos.step}, {"restored", r.restored}};
}

// "resuming DIR at step 120 of 1500, restored from the run: data=/x, batch_size=4, ..."
void print_resuming(const TrainOptions& o, const Resumed& r, int64_t total_steps) {
  std::string settings;
  for (const auto& [key, value] : r.restored.items())
    settings += (settings.empty() ? "" : ", ") + key + "=" +
                (value.is_string() && !value.get<std::string>().empty() ? value.get<std::string>() : value.dump());
  std::fprintf(stderr, "resuming %s at step %lld of %lld, restored from the run: %s\n", o.resume_dir.c_str(),
               static_cast<long long>(r.pos.step), static_cast<long long>(total_steps),
               settings.empty() ? "nothing (every setting given)" : settings.c_str());
}

// Resuming a run that already has its length: say so, write nothing, succeed.
int report_finished(const TrainOptions& o, const Resumed& r, int64_t total_steps) {
  if (r.pos.step == total_steps)
    std::fprintf(stderr, "%s: training finished at step %lld of %lld; nothing to do\n", o.resume_dir.c_str(),
                 static_cast<long long>(r.pos.step), static_cast<long long>(total_steps));
  else
    std::fprintf(stderr, "%s: training is at step %lld, past the %lld steps asked for; nothing to do\n", o.resume_dir.c_str(),
                 static_cast<long long>(r.pos.step), static_cast<long long>(total_steps));
  if (o.json)
    std::printf("%s\n", json({{"done", true}, {"nothing_to_do", true}, {"steps", r.pos.step}, {"total_steps", total_steps},
                               {"resumed", resumed_json(o, r)}}).dump().c_str());
  return 0;
}

// The schedule of this run; resumed, continued from the saved one without the rate jumping up.
LrSchedule run_schedule(const TrainOptions& o, const Resumed* r, int64_t total_steps) {
  const LrSchedule wanted{o.scheduler, o.lr, o.warmup_steps, total_steps};
  if (!r) return wanted;
  const LrSchedule s = continue_schedule(saved_schedule(r->state), wanted, r->pos.step);
  // A finished decaying run has reached lr 0: more steps would change no weight.
  if (s.anchor_step == r->pos.step && s.anchor_lr == 0.0)
    throw Error(o.resume_dir + ": the learning rate reached 0 at step " + std::to_string(r->pos.step) + " (the end of its " +
                saved_schedule(r->state).kind + " schedule), so the steps up to " + std::to_string(total_steps) +
                " would train at lr 0; give --lr LR to go on at a rate of your choice");
  return s;
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

int run_training(const TrainOptions& options) {
  TrainOptions o = options;
  const bool resuming = !o.resume_dir.empty();
  std::optional<Resumed> resumed;
  if (resuming) resumed = read_resumed(o);
  if (o.batch_size < 1) throw Error("--batch-size must be >= 1");
  if (o.grad_accum < 1) throw Error("--grad-accum must be >= 1");
  if (o.output.empty()) throw Error("--output DIR is required");
  if (o.data.empty()) throw Error(resuming ? o.resume_dir + "/trainer_state.json names no data: give --data PATH" : "--data PATH is required");
  if (o.threads > 0) set_num_threads(o.threads);

  // ---- the model's config, processor and data ----
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

  // ---- the run's length: a resumed run already at it is left as it is ----
  const int64_t batches_per_epoch = (data->size() + o.batch_size - 1) / o.batch_size;
  if (batches_per_epoch == 0) throw Error(o.data + ": no examples");
  const int64_t steps_per_epoch = (batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t total_steps = run_length(o, resumed ? &*resumed : nullptr, steps_per_epoch);
  if (total_steps < 1) throw Error("nothing to do: --steps / --epochs must be >= 1");
  if (resumed && resumed->pos.step >= total_steps) return report_finished(o, *resumed, total_steps);
  const LrSchedule schedule = run_schedule(o, resumed ? &*resumed : nullptr, total_steps);
  const int64_t log_every = o.log_every > 0 ? o.log_every : std::max<int64_t>(1, total_steps / 50);

  std::unique_ptr<DataSource> eval_data;
  if (!o.eval_data.empty())
    eval_data = DataSource::open(o.eval_data, proc, cfg.num_channels, num_labels);

  std::shared_ptr<Parameters> net;
  if (fresh) {
    cfg.set_num_labels(num_labels);
    cfg.architectures = {"ConvNextForImageClassification"};
    if (o.drop_path_rate) cfg.drop_path_rate = *o.drop_path_rate;
    net = std::make_shared<Parameters>(cfg, Architecture::ForImageClassification);
    net->init_weights(o.seed);
  } else {
    LoadOptions lo;
    lo.inference_only = false;
    lo.ignore_mismatched_sizes = o.ignore_mismatched_sizes;
    if (num_labels != cfg.num_labels()) lo.num_labels = num_labels;
    lo.seed = o.seed;
    net = Parameters::load(model_dir, lo, Architecture::ForImageClassification);
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

  Gradients grads(*net);
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.decay_all = o.weight_decay_all;
  AdamW opt(grads, ao);
  TrainGraph graph(*net, kernels::default_context());
  Position pos;
  TrainingCurves curves;
  fs::create_directories(o.output);
  const fs::path log_path = fs::path(o.output) / "log.jsonl";
  if (resumed) {
    pos = resumed->pos;
    print_resuming(o, *resumed, total_steps);
    const json& st = resumed->state;
    if (st.value("batch_size", o.batch_size) != o.batch_size || st.value("grad_accum", o.grad_accum) != o.grad_accum ||
        st.value("seed", o.seed) != o.seed)
      std::fprintf(stderr, "warning: --batch-size/--grad-accum/--seed differ from the interrupted run's; the "
                           "continuation will not be the same sequence of steps\n");
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
    const detail::InferencePlan plan(*net, DType::F32, kernels::default_context(), /*release=*/false);
    const EvalResult er = evaluate(plan, *eval_data, std::max<int64_t>(o.batch_size, 32));
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
    save_checkpoint(*net, proc, opt, pos, schedule, o, o.output);
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
        lr = schedule.at(pos.step);
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
  json summary = {{"done", exit_status == 0},    {"steps", pos.step},
                  {"seconds", secs},             {"images", images_total},
                  {"images_per_s", static_cast<double>(images_total) / std::max(secs, 1e-9)},
                  {"skipped_nan_steps", skipped_nan}, {"peak_rss_mb", peak_rss_mb()}};
  if (resumed) summary["resumed"] = resumed_json(o, *resumed);
  log << summary.dump() << "\n";
  std::fprintf(stderr, "%s %lld steps in %s (%.1f img/s, peak RSS %.0f MB); wrote %s\n",
               exit_status == 0 ? "trained" : "stopped after", static_cast<long long>(pos.step), duration_str(secs).c_str(),
               static_cast<double>(images_total) / std::max(secs, 1e-9), peak_rss_mb(), o.output.c_str());
  if (o.json) std::printf("%s\n", summary.dump().c_str());
  return exit_status;
}

}  // namespace convnext::train
