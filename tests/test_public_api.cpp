// The public API the command-line tool is built on (include/convnext/): benchmark_forward and
// benchmark_training, TensorFile and TensorFileWriter, preprocess_each.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "convnext/convnext.h"
#include "test_util.h"

namespace convnext::test {
namespace {


TEST(PublicApi, BenchmarkForwardReportsEveryPartOfThePass) {
  const ConvNextForImageClassification model(small_config(), 0, true);
  int runs = 0;
  BenchmarkOptions o;
  o.batch = 2;
  o.size = 32;
  o.iters = 3;
  o.warmup = 1;
  o.profile = true;
  o.on_run = [&] { ++runs; };
  const BenchmarkResult r = benchmark_forward(model, o);
  EXPECT_EQ(runs, 4);
  EXPECT_EQ(r.mode, "forward");
  EXPECT_EQ(r.dtype, "f32");
  EXPECT_EQ(r.batch, 2);
  EXPECT_GT(r.median_ms, 0);
  EXPECT_LE(r.min_ms, r.median_ms);
  EXPECT_NEAR(r.images_per_s, 2000.0 / r.median_ms, 1e-9 * r.images_per_s);
  std::vector<std::string> parts;
  for (const PartTiming& p : r.parts) parts.push_back(p.part);
  const std::vector<std::string> want = {"embeddings", "stage1.blocks", "stage2.downsample", "stage2.blocks", "pooling", "head"};
  EXPECT_EQ(parts, want);
  EXPECT_EQ(r.kernels, kernel_family());
}

TEST(PublicApi, BenchmarkTrainingNeedsTrainableWeights) {
  const ConvNextForImageClassification frozen_const(small_config(), 0, /*inference_only=*/true);
  ConvNextForImageClassification frozen = frozen_const;
  BenchmarkOptions o;
  o.size = 32;
  o.iters = 2;
  o.warmup = 0;
  EXPECT_THROW(benchmark_training(frozen, o), Error);
  ConvNextForImageClassification model(small_config(), 0, /*inference_only=*/false);
  const BenchmarkResult r = benchmark_training(model, o);
  EXPECT_EQ(r.mode, "train");
  EXPECT_GT(r.median_ms, 0);
  EXPECT_TRUE(r.parts.empty());
  EXPECT_EQ(r.peak_gflops, 0);
}

// bench --train --profile: every part of a step, forward then backward in reverse, in order, each
// with its median; GFLOP/s where the part multiplies; the measured peak beside them.
TEST(PublicApi, BenchmarkTrainingProfileNamesEveryPartOfAStep) {
  ConvNextForImageClassification model(small_config(), 0, /*inference_only=*/false);
  BenchmarkOptions o;
  o.size = 32;
  o.iters = 3;
  o.warmup = 1;
  o.profile = true;
  const BenchmarkResult r = benchmark_training(model, o);
  std::vector<std::string> names;
  double total = 0;
  for (const PartTiming& p : r.parts) {
    names.push_back(p.part);
    total += p.median_ms;
    EXPECT_GE(p.median_ms, 0) << p.part;
    const bool multiplies = p.part.find("blocks") != std::string::npos || p.part.find("downsample") != std::string::npos;
    if (multiplies) {
      EXPECT_GT(p.gflops, 0) << p.part;
    }
  }
  const int64_t stages = small_config().num_stages;
  std::vector<std::string> want = {"embeddings"};
  for (int64_t s = 1; s <= stages; ++s) {
    if (s > 1) want.push_back("stage" + std::to_string(s) + ".downsample");
    want.push_back("stage" + std::to_string(s) + ".blocks");
  }
  for (const char* p : {"head", "loss", "backward.head"}) want.push_back(p);
  for (int64_t s = stages; s >= 1; --s) {
    want.push_back("backward.stage" + std::to_string(s) + ".blocks");
    if (s > 1) want.push_back("backward.stage" + std::to_string(s) + ".downsample");
  }
  for (const char* p : {"backward.embeddings", "optimizer", "other"}) want.push_back(p);
  EXPECT_EQ(names, want);
  EXPECT_NEAR(total, r.median_ms, 0.5 * r.median_ms);  // medians of parts add up to about the step's
  EXPECT_GT(r.peak_gflops, 0);
}

TEST(PublicApi, ForwardMacsOfConvNextTiny) {
  // 4.46 GMACs, the figure the ConvNeXt paper gives for ConvNeXt-T at 224 (4.5 GFLOPs there).
  const double macs = forward_macs(ConvNextConfig::preset("tiny", 1000), 224, 224);
  EXPECT_NEAR(macs / 1e9, 4.46, 0.02);
}

class PublicApiFiles : public TempDirTest {};

TEST_F(PublicApiFiles, TensorFileRoundTripsFloatsAndLabels) {
  const std::string path = this->path("in.safetensors");
  TensorFileWriter w;
  w.add("pixel_values", Tensor({1, 2}, {0.5f, -1.25f}));
  w.add_int64("labels", {3}, {2, -100, 7});
  w.save(path);
  const TensorFile f = TensorFile::open(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"pixel_values", "labels"}));
  EXPECT_EQ(f.dtype("labels"), "I64");
  EXPECT_EQ(f.shape("labels"), (Shape{3}));
  EXPECT_TRUE(f.is_floating("pixel_values"));
  EXPECT_FALSE(f.is_floating("labels"));
  EXPECT_EQ(f.get_int64("labels"), (std::vector<int64_t>{2, -100, 7}));
  const Tensor px = f.get("pixel_values");
  EXPECT_EQ(px[1], -1.25f);
  try {
    f.shape("missing");
    FAIL() << "no error for a missing tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get("labels"), Error);
}

TEST_F(PublicApiFiles, PreprocessEachGivesOneResultOrErrorPerFile) {
  write("broken.png", "not a png");
  const std::string bad = path("broken.png");
  const std::string good = std::string(CONVNEXT_SOURCE_DIR) + "/examples/images";
  std::string first_image;
  for (const auto& e : std::filesystem::directory_iterator(good)) {
    first_image = e.path().string();
    break;
  }
  ASSERT_FALSE(first_image.empty());
  const auto proc = ConvNextImageProcessor::from_pretrained(std::string(CONVNEXT_SOURCE_DIR) + "/models/convnext-fashion-mnist");
  const auto each = proc.preprocess_each({first_image, bad, first_image});
  ASSERT_EQ(each.size(), 3u);
  EXPECT_TRUE(each[0].ok());
  EXPECT_FALSE(each[1].ok());
  EXPECT_EQ(each[1].error.rfind(bad, 0), 0u) << each[1].error;  // the line starts with the file
  EXPECT_EQ(each[1].error.find(bad, 1), std::string::npos) << "the file named twice: " << each[1].error;
  ASSERT_TRUE(each[2].ok());
  EXPECT_EQ(each[0].pixel_values.shape(), each[2].pixel_values.shape());
  EXPECT_EQ(each[0].pixel_values.ndim(), 3);
}

TEST(PublicApi, ScoreFunctionFollowsThePipeline) {
  ConvNextConfig c = small_config();  // 3 labels, no problem_type
  EXPECT_EQ(resolve_score_function(c), ScoreFunction::Softmax);
  c.problem_type = "multi_label_classification";
  EXPECT_EQ(resolve_score_function(c), ScoreFunction::Sigmoid);
  c.problem_type = "regression";
  EXPECT_EQ(resolve_score_function(c), ScoreFunction::None);
  EXPECT_EQ(resolve_score_function(c, ScoreFunction::Softmax), ScoreFunction::Softmax);
  c.problem_type.reset();
  c.set_num_labels(1);
  EXPECT_EQ(resolve_score_function(c), ScoreFunction::Sigmoid);
  EXPECT_EQ(c.resolved_problem_type(), "regression");  // the loss's rule differs from the pipeline's
  EXPECT_THROW(parse_score_function("relu"), Error);
}

TEST(PublicApi, TopPredictionsAreSortedScoresWithLabels) {
  ConvNextConfig c = small_config();
  c.id2label = {{0, "cat"}, {1, "dog"}, {2, "owl"}};
  const Tensor logits({2, 3}, {1.0f, 3.0f, 2.0f, 0.5f, 0.5f, -1.0f});
  const auto top = top_predictions(logits, c, 2);
  ASSERT_EQ(top.size(), 2u);
  ASSERT_EQ(top[0].size(), 2u);
  EXPECT_EQ(top[0][0].label, "dog");
  EXPECT_EQ(top[0][1].label, "owl");
  const double denom = std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  EXPECT_NEAR(top[0][0].score, std::exp(3.0) / denom, 1e-6);
  EXPECT_EQ(top[1][0].index, 0);  // a tie goes to the lower index
  EXPECT_EQ(top[1][1].index, 1);
  const auto raw = top_predictions(logits, c, 5, ScoreFunction::None);
  EXPECT_EQ(raw[0].size(), 3u);  // k is capped at the number of labels
  EXPECT_EQ(raw[0][0].score, 3.0f);
  const auto sig = top_predictions(logits, c, 1, ScoreFunction::Sigmoid);
  EXPECT_NEAR(sig[0][0].score, 1.0 / (1.0 + std::exp(-3.0)), 1e-6);
}

TEST_F(PublicApiFiles, ClassifierGivesOneResultPerFileAsTheModelDoes) {
  const std::string model = std::string(CONVNEXT_SOURCE_DIR) + "/models/convnext-fashion-mnist";
  const auto files = list_image_files({std::string(CONVNEXT_SOURCE_DIR) + "/examples/images"});
  ASSERT_EQ(files.size(), 10u);
  write("broken.jpg", "\xff\xd8\xff truncated");
  std::vector<std::string> paths(files.begin(), files.begin() + 3);
  paths.insert(paths.begin() + 1, path("broken.jpg"));
  const ImageClassifier clf = ImageClassifier::from_pretrained(model);
  ClassifyOptions o;
  o.batch_size = 2;
  o.top_k = 3;
  int seen = 0;
  const auto results = clf.classify_files(paths, o, [&](const FileClassification&) { ++seen; });
  EXPECT_EQ(seen, 4);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].error.rfind(path("broken.jpg"), 0), 0u) << results[1].error;
  // Each good file's top-1 equals what model and processor give for it alone.
  for (size_t i : {0u, 2u, 3u}) {
    ASSERT_TRUE(results[i].ok()) << results[i].error;
    ASSERT_EQ(results[i].predictions.size(), 3u);
    const Tensor logits = clf.model().forward(clf.processor().preprocess_files({paths[i]})).logits;
    const auto alone = top_predictions(logits, clf.config(), 1);
    EXPECT_EQ(results[i].predictions[0].index, alone[0][0].index) << paths[i];
    EXPECT_NEAR(results[i].predictions[0].score, alone[0][0].score, 1e-5) << paths[i];
  }
  write("empty/notes.txt", "no images here");
  EXPECT_THROW(list_image_files({path("empty")}), Error);  // a directory without images
  EXPECT_TRUE(is_image_file_name("x/Y.JPG"));
  EXPECT_FALSE(is_image_file_name("x/y.txt"));
}

TEST(PublicApi, StackAddsALeadingAxis) {
  const Tensor a({2, 2}, {1, 2, 3, 4}), b({2, 2}, {5, 6, 7, 8});
  const Tensor s = stack({a, b});
  EXPECT_EQ(s.shape(), (Shape{2, 2, 2}));
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(s[i], static_cast<float>(i + 1));
  EXPECT_THROW(stack({}), Error);
  EXPECT_THROW(stack({a, Tensor({4}, {1, 2, 3, 4})}), Error);
}

TEST(PublicApi, OneParserForEveryDtypeSpelling) {
  for (const char* s : {"f32", "fp32", "float32", "float", "F32", "torch.float32"}) EXPECT_EQ(parse_dtype(s), DType::F32) << s;
  for (const char* s : {"f16", "fp16", "float16", "half", "F16", "torch.float16"}) EXPECT_EQ(parse_dtype(s), DType::F16) << s;
  for (const char* s : {"bf16", "bfloat16", "BF16", "torch.bfloat16"}) EXPECT_EQ(parse_dtype(s), DType::BF16) << s;
  for (const char* s : {"int8", "i8", "I8", "torch.int8"}) EXPECT_EQ(parse_dtype(s), DType::I8) << s;
  for (const char* s : {"", "f64", "uint8", "Float32", "Int8"}) EXPECT_THROW(parse_dtype(s), Error) << s;
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::I8}) {
    EXPECT_EQ(parse_dtype(dtype_short_name(d)), d);
    EXPECT_EQ(parse_dtype(dtype_torch_name(d)), d);
    EXPECT_EQ(parse_dtype(dtype_safetensors_name(d)), d);
  }
  EXPECT_STREQ(dtype_torch_name(DType::BF16), "bfloat16");
  // f16 is a storage format: a model cannot run in it.
  EXPECT_THROW(ConvNextForImageClassification(small_config(), 0, true, DType::F16), Error);
}

}  // namespace
}  // namespace convnext::test
