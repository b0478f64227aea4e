// The `convnext` command-line contract, end to end: flags, tensor names, exit codes, messages.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convnext/convnext.h"
#include "io/safetensors.h"
#include "cli_util.h"
#include "test_util.h"

#include <sstream>

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

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

// ConvNeXt V2 through the command line: forward (classifier, hidden states, loss; backbone),
// info and init name the V2 classes.
TEST(Cli, V2ForwardInfoAndInit) {
  REQUIRE_FIXTURE("v2_tiny4");
  const std::string out = tmp("v2.safetensors");
  auto exp = io::SafetensorsFile::open(fixture("v2_tiny4/expected.safetensors"));
  CliRun r = run("forward --model " + fixture("v2_tiny4") + " --input " + fixture("v2_tiny4/expected.safetensors") +
                 " --output " + out + " --hidden-states --threads 3");
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = io::SafetensorsFile::open(out);
  for (const char* name : {"logits", "loss", "pooler_output", "last_hidden_state", "hidden_states.0", "hidden_states.4"})
    EXPECT_TRUE(close(got->get_f32(name), exp->get_f32(name))) << name;
  r = run("forward --model " + fixture("v2_tiny4/backbone") + " --input " + fixture("v2_tiny4/expected.safetensors") +
          " --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  got = io::SafetensorsFile::open(out);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(close(got->get_f32("feature_maps." + std::to_string(i)), exp->get_f32("backbone.feature_maps." + std::to_string(i))));
  fs::remove(out);
  r = run("info --model " + fixture("v2_tiny4") + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "ConvNextV2ForImageClassification");
  EXPECT_EQ(j["model_type"], "convnextv2");
  const std::string dir = tmp("v2_atto");
  r = run("init --arch v2-atto --num-labels 3 --architecture ConvNextBackbone --output " + dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("ConvNextV2Backbone"), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "convnextv2");
  EXPECT_EQ(cfg["architectures"], nlohmann::json::array({"ConvNextV2Backbone"}));
  const auto weights = io::SafetensorsFile::open(dir + "/model.safetensors");
  EXPECT_EQ(weights->find("encoder.stages.3.layers.1.grn.bias")->shape, Shape({1, 1, 1, 1280}));
  r = run("info --model " + dir + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["variant"], "v2-atto");
  fs::remove_all(dir);
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
  EXPECT_FALSE(j.contains("profile"));
}

TEST(Cli, BenchRunsTheKernelsItIsGiven) {
  const CliRun r = run("bench --arch tiny --size 32 --iters 1 --warmup 0 --threads 2 --kernels portable --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kernels"], "portable");
  EXPECT_EQ(j["threads"], 2);
  const CliRun bad = run("bench --arch tiny --kernels sse2");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--kernels must be auto, avx512 or portable"), std::string::npos) << bad.err;
}

TEST(Cli, BenchProfileNamesEveryPartOfTheForwardPass) {
  // Structure only (timing never goes into a unit test): the parts in forward order, each with a
  // non-negative median; the stages' GEMM-heavy parts report GFLOP/s, pooling has no FLOPs.
  const CliRun r = run("bench --arch tiny --size 64 --iters 3 --warmup 0 --threads 1 --json --profile");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("profile")) << r.out;
  std::vector<std::string> parts;
  for (const auto& p : j["profile"]) {
    parts.push_back(p["part"].get<std::string>());
    EXPECT_GE(p["median_ms"].get<double>(), 0.0) << parts.back();
    if (parts.back() == "pooling") {
      EXPECT_EQ(p["gflops"].get<double>(), 0.0);
    }
    if (parts.back().find(".blocks") != std::string::npos) {
      EXPECT_GT(p["gflops"].get<double>(), 0.0) << parts.back();
    }
  }
  EXPECT_EQ(parts, (std::vector<std::string>{"embeddings", "stage1.blocks", "stage2.downsample", "stage2.blocks",
                                             "stage3.downsample", "stage3.blocks", "stage4.downsample", "stage4.blocks",
                                             "pooling", "head"}));
  EXPECT_GT(j["peak_gflops"].get<double>(), 0.0);
  EXPECT_TRUE(j.contains("share_of_peak"));
}

TEST(Cli, BenchTrainProfileTimesTheStepsParts) {
  const CliRun r = run("bench --train --arch tiny --size 32 --batch 2 --iters 2 --warmup 0 --threads 1 --profile");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* part : {"measured fp32 peak", "of peak", "stage3.blocks", "loss", "backward.stage1.blocks",
                           "backward.stage4.downsample", "backward.embeddings", "optimizer"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " missing in:\n" << r.out;
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

std::string repo(const std::string& rel) { return std::string(CONVNEXT_SOURCE_DIR) + "/" + rel; }

TEST(CliImages, PreprocessWritesPixelValuesInArgumentOrder) {
  REQUIRE_FIXTURES();
  const std::string a = repo("examples/images/sneaker_t10k_9.png"), b = repo("examples/images/bag_t10k_18.png");
  const std::string out2 = tmp("pp2.safetensors"), out1 = tmp("pp1.safetensors");
  const std::string proc = fixture("preprocess/legacy_config");
  CliRun r = run("preprocess --processor " + proc + " --output " + out2 + " " + a + " " + b);
  ASSERT_EQ(r.status, 0) << r.err;
  r = run("preprocess --processor " + proc + "/preprocessor_config.json --backend torchvision --output " + out1 + " " + b);
  ASSERT_EQ(r.status, 0) << r.err;
  auto two = io::SafetensorsFile::open(out2);
  auto one = io::SafetensorsFile::open(out1);
  const Tensor t2 = two->get_f32("pixel_values"), t1 = one->get_f32("pixel_values");
  ASSERT_EQ(t2.shape(), (Shape{2, 3, 224, 224}));
  ASSERT_EQ(t1.shape(), (Shape{1, 3, 224, 224}));
  // The second image of the pair is b: within one uint8 step of the torchvision backend's b.
  double worst = 0;
  for (int64_t i = 0; i < t1.numel(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(t2[t1.numel() + i]) - t1[i]));
  EXPECT_LE(worst, 1.0 / 255.0 / 0.224 + 1e-5);
  // And the library gives the same as the command.
  const auto lib = ConvNextImageProcessor::from_pretrained(proc).preprocess_files({a, b});
  EXPECT_TRUE(close(lib, t2, 0.0));
  fs::remove(out1);
  fs::remove(out2);
}

TEST(CliImages, ClassifyPrintsTopKAndCarriesOnPastBadFiles) {
  const std::string bad = tmp("empty.png");
  std::ofstream(bad).close();
  const CliRun r = run("classify --model " + repo("models/convnext-demo") + " --top-k 3 --json " +
                       repo("examples/images/sneaker_t10k_9.png") + " " + bad + " " + repo("examples/images/bag_t10k_18.png"));
  EXPECT_NE(r.status, 0);  // one file could not be read
  EXPECT_NE(r.err.find("empty.png"), std::string::npos) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["predictions"].size(), 3u);
    double prev = 2.0;
    for (const auto& p : j["predictions"]) {
      EXPECT_LE(p["score"].get<double>(), prev);
      prev = p["score"].get<double>();
    }
    ++n;
  }
  EXPECT_EQ(n, 2);
  fs::remove(bad);
  // A directory is walked.
  const CliRun d = run("classify --model " + repo("models/convnext-demo") + " " + repo("examples/images"));
  EXPECT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("ankle_boot_t10k_0.png"), std::string::npos);
}

TEST(CliImages, FeaturesWritesPooledOutput) {
  const std::string out = tmp("feat.safetensors");
  const CliRun r = run("features --model " + repo("models/convnext-demo") + " --hidden-states --output " + out + " " +
                       repo("examples/images/trouser_t10k_2.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto f = io::SafetensorsFile::open(out);
  EXPECT_EQ(f->find("pooler_output")->shape, (Shape{1, 128}));
  EXPECT_TRUE(f->contains("last_hidden_state"));
  EXPECT_TRUE(f->contains("hidden_states.4"));
  fs::remove(out);
}

TEST(CliImages, HelpForImageCommands) {
  for (const char* cmd : {"classify --help", "preprocess --help", "features --help"}) {
    const CliRun r = run(cmd);
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_NE(r.out.find("usage"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

TEST(CliConvert, HalfPrecisionOutputsMatchTransformersUpcastLogits) {
  REQUIRE_FIXTURES();
  // transformers saved this model's weights as fp16 and bf16 and computed the fp32 forward of
  // those rounded weights: converting our way must round exactly as torch's .to() does.
  const auto exp = io::SafetensorsFile::open(fixture("variants_tiny4/expected.safetensors"));
  const Tensor px = exp->get_f32("pixel_values");
  for (const auto& [flag, key] : std::vector<std::pair<std::string, std::string>>{
           {"f16", "logits_fp16_weights_fp32_compute"}, {"bf16", "logits_bf16_weights_fp32_compute"}, {"f32", "logits"}}) {
    const std::string out = tmp("converted_" + flag);
    const CliRun r = run("convert --from " + fixture("variants_tiny4/sharded_bin") + " --to " + out + " --dtype " + flag);
    ASSERT_EQ(r.status, 0) << r.err;
    auto m = ConvNextForImageClassification::from_pretrained(out);
    EXPECT_TRUE(close(m.forward(px).logits, exp->get_f32(key))) << flag;
    EXPECT_TRUE(fs::exists(out + "/preprocessor_config.json"));
    fs::remove_all(out);
  }
}

}  // namespace
}  // namespace convnext::test
