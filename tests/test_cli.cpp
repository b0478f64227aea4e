// The `convnext` command-line contract, end to end: flags, tensor names, exit codes, messages.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status;
  std::string out, err;
};

// Runs `convnext ARGS`, capturing stdout and stderr.
CliRun run(const std::string& args) {
  const fs::path err_file = fs::temp_directory_path() / ("convnext_cli_err_" + std::to_string(::getpid()));
  const std::string cmd = std::string(CONVNEXT_CLI) + " " + args + " 2>" + err_file.string();
  CliRun r{-1, "", ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  fs::remove(err_file);
  return r;
}

std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("convnext_cli_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(Cli, HelpForEveryCommand) {
  for (const char* cmd : {"--help", "forward --help", "info --help", "bench --help", "init --help", "make-input --help"}) {
    const CliRun r = run(cmd);
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_NE(r.out.find("usage"), std::string::npos) << cmd;
  }
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
  for (const char* cmd : {"forward", "forward --model /nonexistent --input x --output y", "frobnicate",
                          "forward --bogus 1", "info --model /nonexistent"}) {
    const CliRun r = run(cmd);
    EXPECT_NE(r.status, 0) << cmd;
    EXPECT_FALSE(r.err.empty()) << cmd;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << cmd << ": " << r.err;
  }
}

TEST(Cli, ForwardClassifierWritesTransformersFieldNames) {
  REQUIRE_FIXTURES();
  const std::string out = tmp("tiny4.safetensors");
  const CliRun r = run("forward --model " + fixture("tiny4") + " --input " + fixture("tiny4/expected.safetensors") +
                    " --output " + out + " --hidden-states --threads 2");
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  auto exp = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  for (const char* name : {"logits", "loss", "pooler_output", "last_hidden_state", "hidden_states.0", "hidden_states.1",
                           "hidden_states.2", "hidden_states.3", "hidden_states.4"}) {
    ASSERT_TRUE(got->contains(name)) << name;
    EXPECT_EQ(got->find(name)->dtype, "F32");
    EXPECT_TRUE(close(got->get_f32(name), exp->get_f32(name))) << name;
  }
  EXPECT_FALSE(got->contains("hidden_states.5"));
  fs::remove(out);
}

TEST(Cli, ForwardWithoutLabelsHasNoLossAndNoHiddenStatesByDefault) {
  REQUIRE_FIXTURES();
  const std::string in = tmp("px.safetensors"), out = tmp("out.safetensors");
  {
    io::SafetensorsWriter w;
    w.add("pixel_values", io::SafetensorsFile::open(fixture("multilabel_gelunew/expected.safetensors"))->get_f32("pixel_values"));
    w.save(in);
  }
  const CliRun r = run("forward --model " + fixture("multilabel_gelunew") + " --input " + in + " --output " + out + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  EXPECT_TRUE(got->contains("logits"));
  EXPECT_FALSE(got->contains("loss"));
  EXPECT_FALSE(got->contains("hidden_states.0"));
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "ConvNextForImageClassification");
  EXPECT_EQ(j["predictions"].size(), 2u);
  fs::remove(in);
  fs::remove(out);
}

TEST(Cli, ForwardBackboneAndBareModel) {
  REQUIRE_FIXTURES();
  const std::string out = tmp("bb.safetensors");
  CliRun r = run("forward --model " + fixture("tiny4/backbone") + " --input " + fixture("tiny4/expected.safetensors") +
              " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  auto exp = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(close(got->get_f32("feature_maps." + std::to_string(i)), exp->get_f32("backbone.feature_maps." + std::to_string(i))));
  EXPECT_FALSE(got->contains("logits"));

  r = run("forward --model " + fixture("variants_tiny4/base_model") + " --input " +
          fixture("variants_tiny4/expected.safetensors") + " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  got = io::SafetensorsFile::open(out);
  exp = io::SafetensorsFile::open(fixture("variants_tiny4/expected.safetensors"));
  EXPECT_TRUE(close(got->get_f32("pooler_output"), exp->get_f32("base.pooler_output")));
  EXPECT_TRUE(close(got->get_f32("last_hidden_state"), exp->get_f32("base.last_hidden_state")));
  EXPECT_FALSE(got->contains("logits"));
  fs::remove(out);
}

TEST(Cli, ForwardRejectsWrongChannelsWithTheMessage) {
  REQUIRE_FIXTURES();
  const std::string out = tmp("o.safetensors");
  const CliRun r = run("forward --model " + fixture("gray3_relu_noscale") + " --input " + fixture("tiny4/expected.safetensors") +
                    " --output " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("Make sure that the channel dimension"), std::string::npos) << r.err;
}

TEST(Cli, InfoDescribesTheCheckpoint) {
  REQUIRE_FIXTURES();
  const CliRun r = run("info --model " + fixture("variants_tiny4/sharded") + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "ConvNextForImageClassification");
  EXPECT_EQ(j["num_labels"], 5);
  EXPECT_NE(j["format"].get<std::string>().find("sharded"), std::string::npos);
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  const CliRun text = run("info --model " + fixture("fashion_mnist/model"));
  ASSERT_EQ(text.status, 0);
  EXPECT_NE(text.out.find("T-shirt/top"), std::string::npos);
}

TEST(Cli, InitMakeInputForwardRoundTrip) {
  const std::string dir = tmp("model"), in = tmp("in.safetensors"), out = tmp("out.safetensors");
  const std::string cfg = tmp("config.json");
  std::ofstream(cfg) << R"({"depths": [1, 1], "hidden_sizes": [8, 16], "num_stages": 2, "num_labels": 4})";
  ASSERT_EQ(run("init --config " + cfg + " --output " + dir + " --seed 3").status, 0);
  ASSERT_EQ(run("make-input --shape 2,3,32,32 --labels 4 --output " + in).status, 0);
  const CliRun r = run("forward --model " + dir + " --input " + in + " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  EXPECT_EQ(got->find("logits")->shape, (Shape{2, 4}));
  EXPECT_EQ(got->find("loss")->shape, (Shape{1}));
  fs::remove_all(dir);
  fs::remove(in);
  fs::remove(out);
  fs::remove(cfg);
}

TEST(Cli, BenchJsonLine) {
  const CliRun r = run("bench --arch tiny --size 64 --iters 1 --warmup 0 --threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"arch", "batch", "size", "threads", "dtype", "median_ms", "images_per_s", "gflops", "peak_rss_mb"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["arch"], "tiny");
  EXPECT_EQ(j["threads"], 1);
}

}  // namespace
}  // namespace convnext::test
