// Every model fixture that transformers produced (../shared/fixtures/hf), every output tensor,
// at the fixtures' tolerance: max |ours − ref| ≤ 1e-4 · max(1, max |ref|).
#include <zlib.h>

#include <fstream>

#include "convnext/convnext.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

struct Expected {
  std::shared_ptr<io::SafetensorsFile> file;
  Tensor operator[](const std::string& name) const { return file->get_f32(name); }
  bool has(const std::string& name) const { return file->contains(name); }
};

Expected expected(const std::string& dir) { return {io::SafetensorsFile::open(fixture(dir + "/expected.safetensors"))}; }

Labels labels_of(const Expected& e) {
  if (e.file->find("labels")->dtype == "I64") return Labels::classes(e.file->get_i64("labels"));
  return Labels::floats(e["labels"]);
}

// The classifier fixtures: logits, loss, pooler, last hidden state, every hidden state and
// batch independence.
void check_classifier_fixture(const std::string& dir, const std::string& problem_type) {
  const Expected e = expected(dir);
  auto model = ConvNextForImageClassification::from_pretrained(fixture(dir));
  const Labels labels = labels_of(e);
  auto out = model.forward(e["pixel_values"], &labels, /*output_hidden_states=*/true);
  EXPECT_TRUE(close(out.logits, e["logits"])) << dir << " logits";
  EXPECT_TRUE(close(out.pooler_output, e["pooler_output"])) << dir << " pooler_output";
  EXPECT_TRUE(close(out.last_hidden_state, e["last_hidden_state"])) << dir << " last_hidden_state";
  ASSERT_TRUE(out.loss.has_value());
  EXPECT_TRUE(close(Tensor({1}, {*out.loss}), e["loss"])) << dir << " loss";
  EXPECT_EQ(out.problem_type, problem_type);
  const int64_t n_hidden = model.config().num_stages + 1;
  ASSERT_EQ(static_cast<int64_t>(out.hidden_states.size()), n_hidden);
  for (int64_t i = 0; i < n_hidden; ++i)
    EXPECT_TRUE(close(out.hidden_states[static_cast<size_t>(i)], e["hidden_states." + std::to_string(i)]))
        << dir << " hidden_states." << i;

  // The first image alone gives the same logits as inside the batch.
  const Tensor px = e["pixel_values"];
  const int64_t per = px.numel() / px.dim(0);
  Tensor first({1, px.dim(1), px.dim(2), px.dim(3)});
  std::copy(px.data(), px.data() + per, first.data());
  EXPECT_TRUE(close(model.forward(first).logits, e["logits_first_alone"])) << dir << " logits_first_alone";
}

TEST(Fixtures, Tiny4SingleLabelGelu) {
  REQUIRE_FIXTURES();
  check_classifier_fixture("tiny4", "single_label_classification");
}

TEST(Fixtures, Gray3ReluNoLayerScaleRegression) {
  REQUIRE_FIXTURES();
  check_classifier_fixture("gray3_relu_noscale", "regression");
}

TEST(Fixtures, MultilabelGeluNew) {
  REQUIRE_FIXTURES();
  check_classifier_fixture("multilabel_gelunew", "multi_label_classification");
}

// The backbone beside a fixture (out_features stage1, stage3, stage4) against its expected maps
// and hidden states; returns its config.
ConvNextConfig check_backbone_fixture(const std::string& dir) {
  const Expected e = expected(dir);
  auto bb = ConvNextBackbone::from_pretrained(fixture(dir + "/backbone"));
  EXPECT_EQ(bb.config().out_features, (std::vector<std::string>{"stage1", "stage3", "stage4"}));
  auto out = bb.forward(e["pixel_values"], true);
  EXPECT_EQ(out.feature_maps.size(), 3u);
  for (size_t i = 0; i < std::min<size_t>(3, out.feature_maps.size()); ++i)
    EXPECT_TRUE(close(out.feature_maps[i], e["backbone.feature_maps." + std::to_string(i)])) << dir << " feature_maps." << i;
  EXPECT_EQ(out.hidden_states.size(), 5u);
  for (size_t i = 0; i < std::min<size_t>(5, out.hidden_states.size()); ++i)
    EXPECT_TRUE(close(out.hidden_states[i], e["backbone.hidden_states." + std::to_string(i)])) << dir << " hidden_states." << i;
  return bb.config();
}

TEST(Fixtures, Tiny4Backbone) {
  REQUIRE_FIXTURES();
  EXPECT_FALSE(check_backbone_fixture("tiny4").is_v2());
}

// ConvNeXt V2 (transformers' modeling_convnextv2.py, GRN in every block): the same outputs as
// tiny4's, at the same tolerance.
TEST(Fixtures, V2Tiny4SingleLabelGelu) {
  REQUIRE_FIXTURE("v2_tiny4");
  check_classifier_fixture("v2_tiny4", "single_label_classification");
  const auto model = ConvNextForImageClassification::from_pretrained(fixture("v2_tiny4"));
  EXPECT_TRUE(model.config().is_v2());
  EXPECT_EQ(model.config().architectures, (std::vector<std::string>{"ConvNextV2ForImageClassification"}));
}

TEST(Fixtures, V2Tiny4Backbone) {
  REQUIRE_FIXTURE("v2_tiny4");
  EXPECT_TRUE(check_backbone_fixture("v2_tiny4").is_v2());
}

// The body of the classifier ("convnextv2." prefix) as ConvNextV2Model: last hidden state and
// pooler output of the fixture, the classifier left out with a warning.
TEST(Fixtures, V2ClassifierCheckpointLoadsAsModelAndBackbone) {
  REQUIRE_FIXTURE("v2_tiny4");
  const Expected e = expected("v2_tiny4");
  auto base = ConvNextModel::from_pretrained(fixture("v2_tiny4"));
  EXPECT_FALSE(base.load_warnings().empty());
  auto out = base.forward(e["pixel_values"]);
  EXPECT_TRUE(close(out.last_hidden_state, e["last_hidden_state"]));
  EXPECT_TRUE(close(out.pooler_output, e["pooler_output"]));
  auto bb = ConvNextBackbone::from_pretrained(fixture("v2_tiny4"));
  const auto maps = bb.forward(e["pixel_values"], true);
  EXPECT_TRUE(close(maps.hidden_states[4], e["hidden_states.4"]));
}

TEST(Fixtures, ClassifierCheckpointLoadsAsBackboneWithFreshNorms) {
  REQUIRE_FIXTURES();
  // As transformers: the classifier's head is unused and hidden_states_norms start at 1/0.
  ConvNextConfig c = ConvNextConfig::from_file(fixture("tiny4"));
  auto bb = ConvNextBackbone::from_pretrained(fixture("tiny4"));
  EXPECT_FALSE(bb.load_warnings().empty());
  const Expected e = expected("tiny4");
  auto out = bb.forward(e["pixel_values"], true);
  ASSERT_EQ(out.feature_maps.size(), 1u);  // out_features of tiny4's config: stage4
  EXPECT_TRUE(close(out.hidden_states[4], e["hidden_states.4"]));
}

TEST(Fixtures, ShardedSafetensors) {
  REQUIRE_FIXTURES();
  const Expected e = expected("variants_tiny4");
  auto model = ConvNextForImageClassification::from_pretrained(fixture("variants_tiny4/sharded"));
  EXPECT_NE(model.weights_format().find("sharded"), std::string::npos);
  EXPECT_TRUE(close(model.forward(e["pixel_values"]).logits, e["logits"]));
}

TEST(Fixtures, HalfPrecisionWeightsConvertedAtLoad) {
  REQUIRE_FIXTURES();
  const Expected e = expected("variants_tiny4");
  auto f16 = ConvNextForImageClassification::from_pretrained(fixture("variants_tiny4/fp16"));
  EXPECT_TRUE(close(f16.forward(e["pixel_values"]).logits, e["logits_fp16_weights_fp32_compute"]));
  auto bf16 = ConvNextForImageClassification::from_pretrained(fixture("variants_tiny4/bf16"));
  EXPECT_TRUE(close(bf16.forward(e["pixel_values"]).logits, e["logits_bf16_weights_fp32_compute"]));
}

TEST(Fixtures, BareConvNextModel) {
  REQUIRE_FIXTURES();
  const Expected e = expected("variants_tiny4");
  auto base = ConvNextModel::from_pretrained(fixture("variants_tiny4/base_model"));
  auto out = base.forward(e["pixel_values"]);
  EXPECT_TRUE(close(out.last_hidden_state, e["base.last_hidden_state"]));
  EXPECT_TRUE(close(out.pooler_output, e["base.pooler_output"]));
}

// Reads an idx file, gzip or plain (zlib's gzread reads both).
std::vector<uint8_t> read_idx(const std::string& path, size_t header) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return {};
  std::vector<uint8_t> all;
  uint8_t buf[65536];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) all.insert(all.end(), buf, buf + n);
  gzclose(f);
  if (all.size() < header) return {};
  return std::vector<uint8_t>(all.begin() + static_cast<long>(header), all.end());
}

TEST(Fixtures, FashionMnistTrainedModelOnRealImages) {
  REQUIRE_FIXTURES();
  std::string images;
  for (const char* p : {"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                        "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte"})
    if (std::filesystem::exists(p)) images = p;
  if (images.empty()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed (scripts/setup.sh --tests)";
  const std::vector<uint8_t> px = read_idx(images, 16);
  ASSERT_GE(px.size(), 512u * 784u);
  const int64_t n = 512;
  Tensor x({n, 1, 28, 28});
  for (int64_t i = 0; i < n * 784; ++i)  // as the processor: (float32(x/255) − mean) / std in float32
    x[i] = (static_cast<float>(static_cast<double>(px[static_cast<size_t>(i)]) / 255.0) - 0.2860f) / 0.3530f;
  auto model = ConvNextForImageClassification::from_pretrained(fixture("fashion_mnist/model"));
  auto ref = io::SafetensorsFile::open(fixture("fashion_mnist/test_first512.safetensors"));
  const Tensor logits = model.forward(x).logits;
  EXPECT_TRUE(close(logits, ref->get_f32("logits")));
  const auto labels = ref->get_i64("labels");
  int correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 10; ++j)
      if (logits[i * 10 + j] > logits[i * 10 + best]) best = j;
    correct += best == labels[static_cast<size_t>(i)];
  }
  EXPECT_GT(correct, 512 * 0.85) << "top-1 on the first 512 test images";
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

TEST(Checkpoints, SaveAndReloadGivesTheSameOutputs) {
  REQUIRE_FIXTURES();
  LoadOptions keep;
  keep.inference_only = false;
  auto m = ConvNextForImageClassification::from_pretrained(fixture("tiny4"), keep);
  const std::string dir = (std::filesystem::temp_directory_path() / ("convnext_save_" + std::to_string(::getpid()))).string();
  m.save_pretrained(dir);
  auto back = ConvNextForImageClassification::from_pretrained(dir);
  const Tensor px = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"))->get_f32("pixel_values");
  EXPECT_TRUE(close(back.forward(px).logits, m.forward(px).logits, 0.0));  // the same weights: bit-identical
  EXPECT_EQ(back.num_parameters(), m.num_parameters());
  EXPECT_EQ(back.config().to_json_string(), m.config().to_json_string());
  std::filesystem::remove_all(dir);
}

// A V2 model saves as transformers' ConvNextV2 does: model_type "convnextv2", ConvNextV2 class
// names, "convnextv2." keys, GRN γ and β [1, 1, 1, 4C], no layer_scale_init_value; reloads to the
// same numbers (and the saved tensors equal the fixture's, bit for bit).
TEST(Checkpoints, V2SavesAsTransformersV2) {
  REQUIRE_FIXTURE("v2_tiny4");
  LoadOptions keep;
  keep.inference_only = false;
  auto m = ConvNextForImageClassification::from_pretrained(fixture("v2_tiny4"), keep);
  const std::string dir = (std::filesystem::temp_directory_path() / ("convnext_save_v2_" + std::to_string(::getpid()))).string();
  m.save_pretrained(dir);
  std::ifstream in(dir + "/config.json");
  const std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(cfg.find("\"model_type\": \"convnextv2\""), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("\"ConvNextV2ForImageClassification\""), std::string::npos) << cfg;
  EXPECT_EQ(cfg.find("layer_scale_init_value"), std::string::npos) << cfg;
  const auto saved = io::SafetensorsFile::open(dir + "/model.safetensors");
  const auto ref = io::SafetensorsFile::open(fixture("v2_tiny4/model.safetensors"));
  ASSERT_EQ(saved->tensors().size(), ref->tensors().size());
  for (const io::TensorInfo& t : ref->tensors()) {
    ASSERT_TRUE(saved->contains(t.name)) << t.name;
    EXPECT_TRUE(close(saved->get_f32(t.name), ref->get_f32(t.name), 0.0)) << t.name;
  }
  EXPECT_EQ(saved->find("convnextv2.encoder.stages.0.layers.0.grn.weight")->shape, Shape({1, 1, 1, 32}));
  auto back = ConvNextForImageClassification::from_pretrained(dir);
  const Tensor px = expected("v2_tiny4")["pixel_values"];
  EXPECT_TRUE(close(back.forward(px).logits, m.forward(px).logits, 0.0));
  EXPECT_EQ(back.config().to_json_string(), m.config().to_json_string());
  std::filesystem::remove_all(dir);
}

TEST(Checkpoints, InferenceOnlyModelsRefuseToSave) {
  REQUIRE_FIXTURES();
  auto m = ConvNextForImageClassification::from_pretrained(fixture("tiny4"));  // inference_only by default
  EXPECT_GT(m.num_parameters(), 0);
  EXPECT_THROW(m.save_pretrained((std::filesystem::temp_directory_path() / "convnext_never").string()), Error);
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

// Top-1 (each example's argmax) of `got` against `ref` ([N, L] logits): the examples that agree.
int64_t top1_agreement(const Tensor& got, const Tensor& ref) {
  const int64_t N = ref.dim(0), L = ref.dim(1);
  int64_t agree = 0;
  for (int64_t n = 0; n < N; ++n) {
    int64_t a = 0, b = 0;
    for (int64_t j = 1; j < L; ++j) {
      if (got[n * L + j] > got[n * L + a]) a = j;
      if (ref[n * L + j] > ref[n * L + b]) b = j;
    }
    agree += a == b;
  }
  return agree;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double err = 0;
  for (int64_t i = 0; i < a.numel(); ++i) err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
  return err;
}

// A reduced precision against transformers' fp32 logits on real data, the trained Fashion-MNIST
// model on 512 test images (top-1 the same on at least 99%), and on the random-weight fixtures
// (every top-1 the same, logits within `rel` of their largest). Prints the figures the README reports.
void agrees_with_fp32(Precision precision, double rel) {
  LoadOptions lo;
  lo.precision = precision;
  const char* tag = dtype_short_name(precision);
  for (const char* dir : {"tiny4", "multilabel_gelunew", "gray3_relu_noscale", "v2_tiny4"}) {
    if (!std::filesystem::exists(fixture(dir))) continue;
    const auto e = io::SafetensorsFile::open(fixture(std::string(dir) + "/expected.safetensors"));
    const Tensor ref = e->get_f32("logits");
    const Tensor got = ConvNextForImageClassification::from_pretrained(fixture(dir), lo).forward(e->get_f32("pixel_values")).logits;
    double scale = 1;
    for (int64_t i = 0; i < ref.numel(); ++i) scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
    const double err = max_abs_diff(got, ref);
    const int64_t agree = top1_agreement(got, ref);
    std::printf("[%s] %s: max |logit - fp32 ref| = %.4g (max |ref| %.3g), top-1 agrees on %lld/%lld\n", tag, dir, err,
                scale, static_cast<long long>(agree), static_cast<long long>(ref.dim(0)));
    EXPECT_LT(err, rel * scale) << tag << " " << dir;
    EXPECT_EQ(agree, ref.dim(0)) << tag << " " << dir;
  }
  std::string images;
  for (const char* p : {"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"})
    if (std::filesystem::exists(p)) images = p;
  if (images.empty()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  const std::vector<uint8_t> raw = read_idx(images, 16);
  Tensor x({512, 1, 28, 28});
  for (int64_t i = 0; i < 512 * 784; ++i)
    x[i] = (static_cast<float>(static_cast<double>(raw[static_cast<size_t>(i)]) / 255.0) - 0.2860f) / 0.3530f;
  const Tensor ref = io::SafetensorsFile::open(fixture("fashion_mnist/test_first512.safetensors"))->get_f32("logits");
  const Tensor got = ConvNextForImageClassification::from_pretrained(fixture("fashion_mnist/model"), lo).forward(x).logits;
  const int64_t agree = top1_agreement(got, ref);
  std::printf("[%s] fashion_mnist: top-1 agrees with fp32 on %lld/512 images, max |logit diff| %.4g\n", tag,
              static_cast<long long>(agree), max_abs_diff(got, ref));
  EXPECT_GE(agree, 507) << tag;  // ≥ 99%
}

TEST(Bf16, AgreesWithFp32OnTheFixtures) {
  REQUIRE_FIXTURES();
  agrees_with_fp32(Precision::BF16, 0.05);
}

TEST(Int8, AgreesWithFp32OnTheFixtures) {
  REQUIRE_FIXTURES();
  agrees_with_fp32(Precision::I8, 0.05);
}

}  // namespace
}  // namespace convnext::test
