// trainer_state.json: written with every checkpoint, read back by --resume (see resume.h).
#include "train/resume.h"

#include "train/distributed.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "convnext/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace convnext::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

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
      {"dtype", "dtype", [](const TrainOptions& o) { return json(dtype_short_name(o.precision)); },
       [](TrainOptions& o, const json& j) { o.precision = parse_dtype(j.get<std::string>()); }},
  };
  return all;
}

// The schedule the resumed run followed (its anchor too, when it was itself continued).
LrSchedule saved_schedule(const json& st) {
  LrSchedule s{st.value("lr_scheduler", std::string("linear")), st.value("lr", 5e-5), st.value("warmup_steps", int64_t{0}),
               st.value("total_steps", int64_t{1})};
  s.anchor_step = st.value("lr_anchor_step", int64_t{-1});
  s.anchor_lr = st.value("lr_anchor_lr", 0.0);
  return s;
}

}  // namespace

void write_trainer_state(const std::string& dir, const Position& pos, const LrSchedule& schedule, const TrainOptions& o) {
  json st = {{"global_step", pos.step},           {"epoch", pos.epoch},       {"batch_in_epoch", pos.batch},
             {"total_steps", schedule.total},      {"optimizer", "torch.optim.AdamW"},
             {"adam_betas", {0.9, 0.999}},         {"adam_epsilon", 1e-8}};
  for (const Setting& s : saved_settings()) st[s.key] = s.get(o);
  st["world_size"] = Comm::world().size();  // ranks of the run: each read its share of every epoch
  if (schedule.anchor_step >= 0) {  // the schedule was continued over a new length (see continue_schedule)
    st["lr_anchor_step"] = schedule.anchor_step;
    st["lr_anchor_lr"] = schedule.anchor_lr;
  }
  std::ofstream f(fs::path(dir) / "trainer_state.json");
  f << st.dump(2) << "\n";
  if (!f) throw Error(dir + "/trainer_state.json: write failed");
}

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

int64_t run_length(const TrainOptions& o, Resumed* r, int64_t steps_per_epoch) {
  if (o.steps) return *o.steps;
  if (o.epochs) return *o.epochs * steps_per_epoch;
  if (r && r->state.contains("total_steps")) {
    r->restored["total_steps"] = r->state["total_steps"];
    return r->state["total_steps"].get<int64_t>();
  }
  return 3 * steps_per_epoch;
}

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

json resumed_json(const TrainOptions& o, const Resumed& r) {
  return {{"from", o.resume_dir}, {"step", r.pos.step}, {"restored", r.restored}};
}

std::vector<std::pair<std::string, Tensor>> read_optimizer_state(const std::string& dir) {
  auto state = io::SafetensorsFile::open((fs::path(dir) / "optimizer.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& info : state->tensors()) tensors.emplace_back(info.name, state->get_f32(info.name));
  return tensors;
}

void print_resuming(const TrainOptions& o, const Resumed& r, int64_t total_steps) {
  std::string settings;
  for (const auto& [key, value] : r.restored.items())
    settings += (settings.empty() ? "" : ", ") + key + "=" +
                (value.is_string() && !value.get<std::string>().empty() ? value.get<std::string>() : value.dump());
  std::fprintf(stderr, "resuming %s at step %lld of %lld, restored from the run: %s\n", o.resume_dir.c_str(),
               static_cast<long long>(r.pos.step), static_cast<long long>(total_steps),
               settings.empty() ? "nothing (every setting given)" : settings.c_str());
}

void warn_if_steps_differ(const TrainOptions& o, const Resumed& r) {
  const json& st = r.state;
  if (st.value("batch_size", o.batch_size) != o.batch_size || st.value("grad_accum", o.grad_accum) != o.grad_accum ||
      st.value("seed", o.seed) != o.seed)
    std::fprintf(stderr, "warning: --batch-size/--grad-accum/--seed differ from the interrupted run's; the "
                         "continuation will not be the same sequence of steps\n");
}

void check_world_size(const Resumed& r, int world) {
  const int64_t saved = r.state.value("world_size", int64_t{1});
  if (saved != world)
    throw Error("the run in " + r.state.value("output", std::string("the resumed directory")) + " was trained on " +
                std::to_string(saved) + " rank" + (saved == 1 ? "" : "s") + " and is resumed on " + std::to_string(world) +
                ": resume it with mpirun -np " + std::to_string(saved) +
                " (the data order and the batches of each step depend on the number of ranks)");
}

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

}  // namespace convnext::train
