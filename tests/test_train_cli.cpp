// `convnext train` and `convnext eval` end to end: the flags of the contract, gradients and
// AdamW steps against transformers through the command line, resuming after Ctrl-C, the
// accuracy transformers measured for its Fashion-MNIST model, and bad input.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_util.h"
#include "convnext/convnext.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

std::string tmpdir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("convnext_train_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<nlohmann::json> read_log(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream f(dir + "/log.jsonl");
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

const char* kFashion = "/usr/share/datasets/fashion-mnist";

// The fixture protocol through the CLI: --save-grads is the first step's gradient, the saved
// model after 3 steps is step3.* (constant lr, no clipping, every parameter decayed).
void check_fixture_through_cli(const std::string& name) {
  const std::string src = fs::path(name).is_absolute() ? name : fixture(name);
  const std::string out = tmpdir(fs::path(name).filename().string());
  const CliRun r = run("train --model " + src + " --data " + src + "/expected.safetensors --output " + out +
                       "/ckpt --steps 3 --batch-size 8 --lr 1e-3 --weight-decay 0.01 --weight-decay-all "
                       "--lr-scheduler constant --max-grad-norm 0 --no-shuffle --save-grads " + out + "/grads.safetensors");
  ASSERT_EQ(r.status, 0) << r.err;
  auto e = io::SafetensorsFile::open(src + "/expected.safetensors");
  auto g = io::SafetensorsFile::open(out + "/grads.safetensors");
  auto m = io::SafetensorsFile::open(out + "/ckpt/model.safetensors");
  int n = 0;
  for (const auto& t : m->tensors()) {
    EXPECT_TRUE(close(g->get_f32(t.name), e->get_f32("grad." + t.name), 1e-3)) << "grad." << t.name;
    EXPECT_TRUE(close(m->get_f32(t.name), e->get_f32("step3." + t.name), 2e-5)) << "step3." << t.name;
    ++n;
  }
  EXPECT_EQ(static_cast<size_t>(n), g->tensors().size());
  EXPECT_GT(n, 10);
  for (const char* f : {"config.json", "preprocessor_config.json", "optimizer.safetensors", "trainer_state.json",
                        "log.jsonl", "training.svg"})
    EXPECT_TRUE(fs::exists(out + "/ckpt/" + f)) << f;
  // The saved directory loads back and keeps the problem type and labels.
  const auto cfg = ConvNextConfig::from_file(out + "/ckpt");
  EXPECT_EQ(cfg.num_labels(), ConvNextConfig::from_file(src).num_labels());
  fs::remove_all(out);
}

TEST(TrainCli, FixtureGradientsAndStepsThroughTheCommandLine) {
  REQUIRE_FIXTURES();
  check_fixture_through_cli("train_tiny4");
  check_fixture_through_cli("train_multilabel");
}

// ConvNeXt V2 through `convnext train`: the generated V2 training variant (gradients and AdamW
// steps from torch autograd through the twin of modeling_convnextv2). Named TrainVariants.* so
// that ctest runs it after the generator (the train_variants test).
TEST(TrainVariants, V2ThroughTheCommandLine) {
  const fs::path dir = fs::path(CONVNEXT_GENERATED_DIR) / "train" / "v2_gelu";
  if (!fs::exists(dir / "expected.safetensors"))
    GTEST_SKIP() << dir << " not generated (ctest -R generate_train_variants needs python3-torch)";
  check_fixture_through_cli(dir.string());
}

// train --dtype bf16: the fixture's first-step gradients within bf16's tolerance, the run's dtype
// in the summary and in trainer_state.json (and kept by --resume), an fp32 checkpoint; int8 is
// refused; bench --train --dtype bf16 times bf16 steps.
TEST(TrainCli, Bf16MixedPrecision) {
  REQUIRE_FIXTURES();
  const std::string src = fixture("train_tiny4"), out = tmpdir("bf16");
  const std::string args = "train --model " + src + " --data " + src + "/expected.safetensors --output " + out +
                           "/ckpt --batch-size 8 --lr 1e-3 --lr-scheduler constant --max-grad-norm 0 --no-shuffle --json";
  const CliRun r = run(args + " --steps 2 --dtype bf16 --save-grads " + out + "/grads.safetensors");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("bf16 mixed precision"), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["dtype"], "bf16");
  auto e = io::SafetensorsFile::open(src + "/expected.safetensors");
  auto g = io::SafetensorsFile::open(out + "/grads.safetensors");
  auto m = io::SafetensorsFile::open(out + "/ckpt/model.safetensors");
  for (const auto& t : m->tensors()) {
    EXPECT_EQ(t.dtype, "F32") << t.name;
    EXPECT_TRUE(close(g->get_f32(t.name), e->get_f32("grad." + t.name), 1e-2)) << "grad." << t.name;
  }
  EXPECT_EQ(io::read_json_file(out + "/ckpt/trainer_state.json")["dtype"], "bf16");
  const CliRun more = run("train --resume " + out + "/ckpt --steps 3 --json");
  ASSERT_EQ(more.status, 0) << more.err;
  EXPECT_EQ(nlohmann::json::parse(more.out)["dtype"], "bf16");
  const CliRun i8 = run(args + " --steps 1 --dtype int8");
  EXPECT_EQ(i8.status, 1);
  EXPECT_NE(i8.err.find("--dtype must be f32 or bf16"), std::string::npos) << i8.err;
  const CliRun b = run("bench --train --arch atto --size 32 --batch 2 --iters 1 --warmup 0 --dtype bf16 --json");
  ASSERT_EQ(b.status, 0) << b.err;
  const auto j = nlohmann::json::parse(b.out);
  EXPECT_EQ(j["dtype"], "bf16");
  EXPECT_EQ(j["mode"], "train");
  EXPECT_TRUE(j["kernels"] == "avx512_bf16" || j["kernels"] == "portable_bf16") << j["kernels"];
  fs::remove_all(out);
}

TEST(TrainCli, HelpNamesTheContract) {
  const CliRun t = run("train --help");
  EXPECT_EQ(t.status, 0);
  for (const char* flag : {"--model", "--config", "--arch", "--num-labels", "--ignore-mismatched-sizes", "--data",
                           "--eval-data", "--output", "--epochs", "--steps", "--batch-size", "--grad-accum", "--lr",
                           "--weight-decay", "--weight-decay-all", "--lr-scheduler", "--warmup-steps", "--max-grad-norm",
                           "--no-shuffle", "--no-augment", "--seed", "--save-grads", "--save-every", "--resume", "--threads",
                           "--dtype"})
    EXPECT_NE(t.out.find(flag), std::string::npos) << flag;
  const CliRun e = run("eval --help");
  EXPECT_EQ(e.status, 0);
  for (const char* flag : {"--model", "--data", "--json", "--plot", "--dtype", "--agree-with"})
    EXPECT_NE(e.out.find(flag), std::string::npos) << flag;
}

// transformers measured 0.9092 top-1 for its Fashion-MNIST model on the 10,000 test images.
TEST(TrainCli, EvalReproducesTransformersAccuracy) {
  REQUIRE_FIXTURES();
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string out = tmpdir("eval");
  const CliRun r = run("eval --model " + fixture("fashion_mnist/model") + " --data " + kFashion + ":test --json --plot " +
                       out + "/confusion.svg");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"].get<int64_t>(), 10000);
  EXPECT_NEAR(j["top1"].get<double>(), 0.9092, 0.00015) << "two images either way at most";
  EXPECT_GT(j["top5"].get<double>(), j["top1"].get<double>());
  EXPECT_EQ(j["confusion_matrix"].size(), 10u);
  EXPECT_TRUE(j["per_class_accuracy"].contains("Ankle boot"));
  EXPECT_TRUE(fs::exists(out + "/confusion.svg"));
  const CliRun text = run("eval --model " + fixture("fashion_mnist/model") + " --data " + kFashion + ":test");
  EXPECT_NE(text.out.find("confusion matrix"), std::string::npos);
  fs::remove_all(out);
}

// int8 (issue: within 0.3 points of fp32 and the same top-1 on at least 99% of the 10,000 test
// images) for the model the repository ships, and for the model transformers trained.
TEST(TrainCli, EvalInt8KeepsTheAccuracy) {
  REQUIRE_FIXTURES();
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  for (const std::string& model : {std::string(CONVNEXT_SOURCE_DIR) + "/models/convnext-fashion-mnist", fixture("fashion_mnist/model")}) {
    const CliRun f = run("eval --model " + model + " --data " + kFashion + ":test --json");
    const CliRun q = run("eval --model " + model + " --data " + kFashion + ":test --json --dtype int8 --agree-with f32");
    ASSERT_EQ(f.status, 0) << f.err;
    ASSERT_EQ(q.status, 0) << q.err;
    const auto jf = nlohmann::json::parse(f.out), jq = nlohmann::json::parse(q.out);
    EXPECT_EQ(jf["dtype"], "f32");
    EXPECT_EQ(jq["dtype"], "int8");
    const double f32 = jf["top1"].get<double>(), int8 = jq["top1"].get<double>();
    const auto& agreement = jq["agreement"];
    std::printf("[int8] %s: top-1 %.4f (f32 %.4f), the same top-1 as f32 on %lld / 10000\n", model.c_str(), int8, f32,
                static_cast<long long>(agreement["agreed"].get<int64_t>()));
    EXPECT_LE(std::fabs(int8 - f32), 0.003) << model;
    EXPECT_EQ(agreement["with"], "f32");
    EXPECT_EQ(agreement["compared"].get<int64_t>(), 10000);
    EXPECT_GE(agreement["top1_agree"].get<double>(), 0.99) << model;
    EXPECT_LT(agreement["top1_agree"].get<double>(), 1.0) << model << ": int8 changed nothing; did it run?";
  }
  const CliRun text = run("eval --model " + fixture("fashion_mnist/model") + " --data " + kFashion +
                          ":test --dtype int8 --agree-with f32");
  EXPECT_NE(text.out.find("dtype int8"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("top-1 the same as f32 on"), std::string::npos) << text.out;
  EXPECT_NE(run("eval --model x --data y --dtype f16").err.find("--dtype must be"), std::string::npos);
}

// A P6 PPM of w x h pixels from a seeded pattern.
void write_ppm(const std::string& path, int w, int h, int seed) {
  std::ofstream f(path, std::ios::binary);
  f << "P6 " << w << " " << h << " 255\n";
  for (int i = 0; i < w * h * 3; ++i) f.put(static_cast<char>((i * 31 + seed * 97 + (i * i) % 11) & 0xff));
}

// `eval` reads its batches with the training loader: --workers W threads, and the same report
// for any W. The library takes the count in EvalOptions::workers, and the loader checks it.
TEST(TrainCli, EvalWorkersChangeOnlyTheSpeed) {
  const std::string out = tmpdir("eval_workers");
  for (int c = 0; c < 3; ++c) {  // images of several sizes (the processor resizes them), one unreadable
    fs::create_directories(out + "/imgs/class" + std::to_string(c));
    for (int k = 0; k < 5; ++k)
      write_ppm(out + "/imgs/class" + std::to_string(c) + "/" + std::to_string(k) + ".ppm", 20 + 3 * k, 24 + 2 * c, 5 * c + k);
  }
  std::ofstream(out + "/imgs/class1/broken.ppm") << "not an image";
  std::ofstream(out + "/config.json") << R"({"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "num_labels": 3,
    "image_size": 32})";
  ASSERT_EQ(run("init --config " + out + "/config.json --output " + out + "/model").status, 0);
  const std::string eval = "eval --model " + out + "/model --data " + out + "/imgs --batch-size 4 --threads 1 --json";
  std::map<int, nlohmann::json> reports;
  for (int workers : {1, 3}) {
    const CliRun r = run(eval + " --workers " + std::to_string(workers));
    ASSERT_EQ(r.status, 0) << r.err;
    reports[workers] = nlohmann::json::parse(r.out);
    reports[workers].erase("seconds");
  }
  EXPECT_EQ(reports[1], reports[3]);
  EXPECT_EQ(reports[1]["examples"].get<int64_t>(), 15);
  EXPECT_EQ(reports[1]["skipped"].get<int64_t>(), 1);

  const CliRun bad = run(eval + " --workers 0");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--workers must be between 1 and 1024"), std::string::npos) << bad.err;
  EXPECT_NE(run("eval --help").out.find("--workers W"), std::string::npos);

  EvalOptions eo;
  eo.batch_size = 4;
  eo.workers = 0;  // the calling thread reads every batch
  EvalResult direct = evaluate_dataset(out + "/model", out + "/imgs", eo);
  direct.seconds = 0;
  auto j = nlohmann::json::parse(eval_json(direct));
  j.erase("seconds");
  EXPECT_EQ(j, reports[1]);
  eo.workers = -1;
  try {
    evaluate_dataset(out + "/model", out + "/imgs", eo);
    ADD_FAILURE() << "workers -1 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("workers"), std::string::npos) << e.what();
  }
  fs::remove_all(out);
}

// The model this project trained (models/convnext-fashion-mnist): `convnext eval` on the 10,000
// Fashion-MNIST test images reproduces the accuracy of its model card (eval.json), which is >= 0.92.
TEST(TrainCli, ShippedModelReachesItsAccuracy) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string model = std::string(CONVNEXT_SOURCE_DIR) + "/models/convnext-fashion-mnist";
  std::ifstream card(model + "/eval.json");
  ASSERT_TRUE(card.good()) << model << "/eval.json";
  const auto claimed = nlohmann::json::parse(card);
  const CliRun r = run("eval --model " + model + " --data " + kFashion + ":test --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["examples"].get<int64_t>(), 10000);
  EXPECT_GE(j["top1"].get<double>(), 0.92);
  // Exact on the machine that trained it; another CPU (portable kernels) may round a logit
  // differently, so allow two images either way.
  EXPECT_NEAR(j["top1"].get<double>(), claimed["top1"].get<double>(), 0.00025);
}

// A small model on Fashion-MNIST: the loss falls, eval runs on what train wrote.
TEST(TrainCli, ShortRunLossFalls) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string out = tmpdir("short");
  std::ofstream(out + "/config.json") << R"({"num_channels": 1, "patch_size": 2, "num_stages": 2, "hidden_sizes": [8, 16],
    "depths": [1, 1], "image_size": 28})";
  std::ofstream(out + "/preprocessor_config.json") << R"({"do_resize": false, "image_mean": [0.286], "image_std": [0.353]})";
  const CliRun r = run("train --config " + out + "/config.json --data " + kFashion + ":test --output " + out +
                       "/ckpt --steps 60 --batch-size 32 --lr 3e-3 --lr-scheduler constant --log-every 5 --seed 1 --no-augment --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto log = read_log(out + "/ckpt");
  ASSERT_GE(log.size(), 10u);
  const double first = log.front()["loss"].get<double>(), last = log[log.size() - 2]["loss"].get<double>();
  EXPECT_GT(first, 2.0);
  EXPECT_LT(last, 0.8 * first) << "loss did not fall: " << first << " -> " << last;
  EXPECT_TRUE(nlohmann::json::parse(r.out)["done"].get<bool>());
  const auto cfg = ConvNextConfig::from_file(out + "/ckpt");
  EXPECT_EQ(cfg.id2label.at(9), "Ankle boot");
  const CliRun e = run("eval --model " + out + "/ckpt --data " + kFashion + ":test --json");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_GT(nlohmann::json::parse(e.out)["top1"].get<double>(), 0.3);
  fs::remove_all(out);
}

// Runs `convnext ARGS` and sends it Ctrl-C once DIR/log.jsonl has `lines` lines; returns its exit
// status (130: interrupted and saved; 0: it finished first).
int run_interrupted(const std::string& args, const std::string& dir, size_t lines) {
  const std::string cmd = std::string(CONVNEXT_CLI) + " " + args;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " 2>/dev/null").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline && read_log(dir).size() < lines)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Ctrl-C saves a checkpoint; `--resume DIR` alone (everything else restored from the run)
// continues to exactly the weights of an uninterrupted run (data order, augmentation and
// stochastic depth are seeded by position, not by history).
TEST(TrainCli, InterruptedRunResumesToTheSameWeights) {
  const std::string out = tmpdir("resume");
  ASSERT_EQ(run("make-input --shape 64,3,48,48 --labels 3 --seed 3 --output " + out + "/data.safetensors").status, 0);
  std::ofstream(out + "/config.json") << R"({"hidden_sizes": [16, 32], "depths": [2, 2], "num_stages": 2,
    "drop_path_rate": 0.3, "num_labels": 3, "image_size": 48})";
  const std::string common = "train --config " + out + "/config.json --data " + out +
                             "/data.safetensors --steps 1500 --batch-size 4 --lr 1e-3 --log-every 1 --threads 1 --crop-scale 0.5 --seed 7";
  ASSERT_EQ(run(common + " --output " + out + "/straight").status, 0);

  // The same run, interrupted once it has logged a few steps.
  const int st = run_interrupted(common + " --output " + out + "/cut", out + "/cut", 5);
  if (st == 0) GTEST_SKIP() << "the run finished before the interrupt arrived";
  ASSERT_EQ(st, 130);
  std::ifstream sf(out + "/cut/trainer_state.json");
  const auto state = nlohmann::json::parse(sf);
  const int64_t at = state["global_step"].get<int64_t>();
  EXPECT_GT(at, 0);
  EXPECT_LT(at, 1500);

  // Alone: the thread count is not a setting of the run (the numbers do not depend on it), so this
  // part runs on the automatic count.
  const CliRun r = run("train --resume " + out + "/cut --json");
  ASSERT_EQ(r.status, 0) << r.err;
  // It says what it restored: one line, and in the JSON summary.
  EXPECT_NE(r.err.find("resuming " + out + "/cut at step " + std::to_string(at) + " of 1500, restored from the run: "),
            std::string::npos) << r.err;
  for (const std::string& part : {"data=" + out + "/data.safetensors", std::string("batch_size=4"), std::string("lr=0.001"),
                                 std::string("seed=7"), std::string("crop_scale_min=0.5"), std::string("total_steps=1500")})
    EXPECT_NE(r.err.find(part), std::string::npos) << part << ": " << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["resumed"]["step"].get<int64_t>(), at);
  EXPECT_EQ(summary["resumed"]["restored"]["data"], out + "/data.safetensors");
  EXPECT_EQ(summary["resumed"]["restored"]["seed"].get<int64_t>(), 7);
  auto a = io::SafetensorsFile::open(out + "/straight/model.safetensors");
  auto b = io::SafetensorsFile::open(out + "/cut/model.safetensors");
  for (const auto& t : a->tensors()) EXPECT_TRUE(close(b->get_f32(t.name), a->get_f32(t.name), 0.0)) << t.name;
  const auto log = read_log(out + "/cut");
  int64_t last_step = 0;
  for (const auto& j : log)
    if (j.contains("step")) last_step = std::max(last_step, j["step"].get<int64_t>());
  EXPECT_EQ(last_step, 1500);
  fs::remove_all(out);
}

// Every file of a directory with its bytes and modification time.
std::map<std::string, std::pair<std::string, fs::file_time_type>> snapshot(const std::string& dir) {
  std::map<std::string, std::pair<std::string, fs::file_time_type>> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    files[e.path().filename().string()] = {std::string(std::istreambuf_iterator<char>(f), {}), fs::last_write_time(e.path())};
  }
  return files;
}

// The logged learning rates (step, lr) never go up after warmup.
void expect_lr_never_rises_after(const std::vector<nlohmann::json>& log, int64_t warmup) {
  double prev = INFINITY;
  int64_t checked = 0;
  for (const auto& j : log) {
    if (!j.contains("lr") || j["step"].get<int64_t>() <= warmup) continue;
    const double lr = j["lr"].get<double>();
    EXPECT_LE(lr, prev) << "the learning rate rose at step " << j["step"];
    prev = lr;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

// A longer --steps on resume continues the schedule: the rate at the resume step is the one the
// interrupted run had there, and it decays from it to 0 at the new end, never back up.
TEST(TrainCli, ALongerRunOnResumeNeverRaisesTheLearningRate) {
  const std::string out = tmpdir("longer");
  ASSERT_EQ(run("make-input --shape 64,3,48,48 --labels 3 --seed 3 --output " + out + "/data.safetensors").status, 0);
  ASSERT_EQ(run("make-input --shape 16,3,48,48 --labels 3 --seed 4 --output " + out + "/eval.safetensors").status, 0);
  std::ofstream(out + "/config.json") << R"({"hidden_sizes": [16, 32], "depths": [2, 2], "num_stages": 2, "num_labels": 3,
    "image_size": 48})";
  const int st = run_interrupted("train --config " + out + "/config.json --data " + out + "/data.safetensors --eval-data " + out +
                                     "/eval.safetensors --steps 1500 --batch-size 4 --lr 1e-3 --warmup-steps 5 --log-every 1 --threads 1 --output " +
                                     out + "/run",
                                 out + "/run", 20);
  if (st == 0) GTEST_SKIP() << "the run finished before the interrupt arrived";
  ASSERT_EQ(st, 130);
  std::ifstream sf(out + "/run/trainer_state.json");
  const int64_t at = nlohmann::json::parse(sf)["global_step"].get<int64_t>();
  ASSERT_GT(at, 5);

  const CliRun r = run("train --resume " + out + "/run --steps 3000 --threads 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("eval_data=" + out + "/eval.safetensors"), std::string::npos) << r.err;  // the evaluation data too
  const auto log = read_log(out + "/run");
  expect_lr_never_rises_after(log, 5);
  // The step after the resume ran at the interrupted run's rate for it: linear from 1e-3 at the
  // end of warmup (step 5) to 0 at 1500.
  const double expected = 1e-3 * static_cast<double>(1500 - at) / (1500 - 5);
  int64_t last = 0, evals_after = 0;
  for (const auto& j : log) {
    if (j.contains("lr") && j["step"].get<int64_t>() == at + 1) {
      EXPECT_NEAR(j["lr"].get<double>(), expected, 1e-15);
    }
    if (j.contains("step")) last = std::max(last, j["step"].get<int64_t>());
    if (j.contains("eval_loss") && j["step"].get<int64_t>() > at) ++evals_after;
  }
  EXPECT_EQ(last, 3000);
  EXPECT_GT(evals_after, 0);
  fs::remove_all(out);
}

// Resuming a finished run says so, succeeds and writes nothing; going on past a schedule that
// has decayed to 0 needs a new --lr, from which the rate then decays.
TEST(TrainCli, AFinishedRunIsLeftAsItIs) {
  const std::string out = tmpdir("finished");
  ASSERT_EQ(run("make-input --shape 16,3,32,32 --labels 3 --seed 3 --output " + out + "/data.safetensors").status, 0);
  std::ofstream(out + "/config.json") << R"({"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "num_labels": 3})";
  ASSERT_EQ(run("train --config " + out + "/config.json --data " + out + "/data.safetensors --steps 6 --batch-size 4 --lr 1e-3 "
                "--log-every 1 --output " + out + "/run").status, 0);
  const auto before = snapshot(out + "/run");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a rewrite would show in the times

  const CliRun r = run("train --resume " + out + "/run");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, out + "/run: training finished at step 6 of 6; nothing to do\n");
  const CliRun j = run("train --resume " + out + "/run --json");
  EXPECT_EQ(j.status, 0) << j.err;
  const auto summary = nlohmann::json::parse(j.out);
  EXPECT_TRUE(summary["nothing_to_do"].get<bool>());
  EXPECT_EQ(summary["steps"].get<int64_t>(), 6);
  EXPECT_TRUE(summary["resumed"]["restored"].contains("data"));
  const CliRun more = run("train --resume " + out + "/run --steps 12");  // linear, at lr 0 since step 6
  EXPECT_EQ(more.status, 1);
  EXPECT_NE(more.err.find("give --lr"), std::string::npos) << more.err;
  EXPECT_TRUE(snapshot(out + "/run") == before) << "resuming a finished run changed its files";

  const CliRun again = run("train --resume " + out + "/run --steps 30 --lr 5e-4");
  ASSERT_EQ(again.status, 0) << again.err;
  const auto log = read_log(out + "/run");
  for (const auto& l : log)
    if (l.contains("lr") && l["step"].get<int64_t>() == 7) {
      EXPECT_DOUBLE_EQ(l["lr"].get<double>(), 5e-4);
    }
  expect_lr_never_rises_after(log, 6);
  fs::remove_all(out);
}

// What `convnext train` saves is what transformers' from_pretrained reads: the PyTorch twin of
// tests/reference loads it, reads every tensor (none missing, none unused) and gives the logits
// `convnext forward` gives.
// The same for ConvNeXt V2: config.json of ConvNextV2ForImageClassification, "convnextv2." keys,
// GRN [1, 1, 1, 4C].
void check_saved_checkpoint(const std::string& name, const std::string& config) {
  const std::string out = tmpdir(name);
  ASSERT_EQ(run("make-input --shape 16,3,40,40 --labels 4 --seed 8 --output " + out + "/data.safetensors").status, 0);
  std::ofstream(out + "/config.json") << config;
  ASSERT_EQ(run("train --config " + out + "/config.json --data " + out + "/data.safetensors --output " + out +
                "/ckpt --steps 3 --batch-size 8 --lr 1e-2").status, 0);
  ASSERT_EQ(run("forward --model " + out + "/ckpt --input " + out + "/data.safetensors --output " + out + "/out.safetensors").status, 0);
  const std::string cmd = std::string("/usr/bin/python3 ") + CONVNEXT_SOURCE_DIR + "/tests/reference/check_saved_checkpoint.py " +
                          out + "/ckpt " + out + "/data.safetensors " + out + "/out.safetensors > " + out + "/twin.txt 2>&1";
  const int st = std::system(cmd.c_str());
  std::ifstream f(out + "/twin.txt");
  const std::string msg((std::istreambuf_iterator<char>(f)), {});
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) GTEST_SKIP() << msg;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << msg;
  fs::remove_all(out);
}

TEST(TrainCli, SavedCheckpointReadsAsTransformersWould) {
  check_saved_checkpoint("twin", R"({"hidden_sizes": [8, 12, 16, 24], "depths": [1, 1, 2, 1], "num_labels": 4,
    "hidden_act": "gelu", "layer_scale_init_value": 0.5})");
}

TEST(TrainCli, SavedV2CheckpointReadsAsTransformersWould) {
  check_saved_checkpoint("twin_v2", R"({"model_type": "convnextv2", "hidden_sizes": [8, 12, 16, 24], "depths": [1, 1, 2, 1],
    "num_labels": 4, "hidden_act": "gelu"})");
}

TEST(TrainCli, BadInputIsOneClearLine) {
  const std::string out = tmpdir("bad");
  ASSERT_EQ(run("make-input --shape 8,3,32,32 --labels 3 --output " + out + "/ok.safetensors").status, 0);
  ASSERT_EQ(run("make-input --shape 8,1,32,32 --labels 3 --output " + out + "/grey.safetensors").status, 0);
  ASSERT_EQ(run("make-input --shape 8,3,32,32 --labels 9 --seed 5 --output " + out + "/many.safetensors").status, 0);
  std::ofstream(out + "/config.json") << R"({"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "num_labels": 3})";
  // A NaN in the pixels makes the loss NaN at the first step.
  {
    Tensor px = load_tensor(out + "/ok.safetensors", "pixel_values");
    Tensor copy = px.clone();
    copy[5] = NAN;
    io::SafetensorsWriter w;
    w.add("pixel_values", copy);
    w.add_i64("labels", {8}, {0, 1, 2, 0, 1, 2, 0, 1});
    w.save(out + "/nan.safetensors");
  }
  const std::string base = "train --config " + out + "/config.json --output " + out + "/o --steps 2 --batch-size 8 ";
  struct Case {
    std::string args, needle;
  };
  for (const Case& c : {Case{"--data " + out + "/grey.safetensors", "channel"},
                        Case{"--data " + out + "/many.safetensors", "out of range"},
                        Case{"--data " + out + "/nan.safetensors", "NaN at step 1"},
                        Case{"--data " + out + "/missing", "missing"},
                        Case{"--data " + out + "/ok.safetensors --lr-scheduler wavy", "lr-scheduler"},
                        Case{"--data " + out + "/ok.safetensors --arch tiny", "exactly one"}}) {
    const CliRun r = run(base + c.args);
    EXPECT_EQ(r.status, 1) << c.args;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << ": " << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;
  }
  const CliRun skip = run(base + "--data " + out + "/nan.safetensors --skip-nan --json");
  EXPECT_EQ(skip.status, 0) << skip.err;
  EXPECT_NE(skip.err.find("skipping this step"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(skip.out)["skipped_nan_steps"].get<int64_t>(), 2);
  fs::remove_all(out);
}

}  // namespace
}  // namespace convnext::test
