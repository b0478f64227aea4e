// Checkpoints written by PyTorch twins of timm and facebookresearch ConvNeXt-V2
// (tests/reference/make_layouts.py, Debian's python3-torch): a timm V1 conv-MLP model
// (convnext_atto..nano's layout), timm convnextv2 models with the Linear and the conv MLP, a
// facebookresearch ConvNeXt-V2 checkpoint, and the same V2 weights in transformers' layout. Each
// loads without config.json to the logits its twin computed, `convert` writes transformers-V2
// files holding exactly the transformers layout's tensors, and timm's _ols models are refused.
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "convnext/convnext.h"
#include "convnext/error.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

// Runs the generator once per process; "" (and `why`) when it could not.
const std::string& layouts(std::string& why) {
  static std::string reason;
  static const std::string dir = [] {
    const std::string out = std::string(CONVNEXT_GENERATED_DIR) + "/layouts";
    return run_generator(CONVNEXT_SOURCE_DIR "/tests/reference/make_layouts.py '" + out + "'", out,
                         "python3-torch (scripts/setup.sh --tests)", reason);
  }();
  why = reason;
  return dir;
}

#define REQUIRE_LAYOUTS(var)                \
  std::string why_;                         \
  const std::string& var = layouts(why_);   \
  if (var.empty()) GTEST_SKIP() << why_

Tensor expected(const std::string& dir, const std::string& name) {
  return io::SafetensorsFile::open(dir + "/expected.safetensors")->get_f32(name);
}

TEST(Layouts, TimmV1ConvMlpGivesItsTwinsLogits) {
  REQUIRE_LAYOUTS(dir);
  const Tensor px = expected(dir, "pixel_values"), ref = expected(dir, "logits_v1");
  const auto m = ConvNextForImageClassification::from_pretrained(dir + "/timm_v1_convmlp.safetensors");
  const ConvNextConfig& c = m.config();
  EXPECT_FALSE(c.is_v2());
  EXPECT_EQ(c.hidden_sizes, (std::vector<int64_t>{8, 16, 24, 32}));
  EXPECT_EQ(c.depths, (std::vector<int64_t>{1, 1, 2, 1}));
  EXPECT_GT(c.layer_scale_init_value, 0.0);
  EXPECT_TRUE(has_note(m.load_warnings(), "timm"));
  EXPECT_TRUE(close(m.forward(px).logits, ref));
  // The same weights in transformers' layout (the twin's own check: 0 difference between them).
  EXPECT_TRUE(close(ConvNextForImageClassification::from_pretrained(dir + "/hf_v1").forward(px).logits, ref));
}

TEST(Layouts, V2InTransformersTimmAndFacebookresearchLayoutsGiveTheSameLogits) {
  REQUIRE_LAYOUTS(dir);
  const Tensor px = expected(dir, "pixel_values"), ref = expected(dir, "logits_v2");
  for (const char* file : {"hf_v2", "timm_v2.safetensors", "timm_v2_convmlp.safetensors", "fb_v2.pt"}) {
    SCOPED_TRACE(file);
    const auto m = ConvNextForImageClassification::from_pretrained(dir + "/" + file);
    const ConvNextConfig& c = m.config();
    EXPECT_TRUE(c.is_v2());
    EXPECT_EQ(c.architectures, (std::vector<std::string>{"ConvNextV2ForImageClassification"}));
    EXPECT_EQ(c.hidden_sizes, (std::vector<int64_t>{8, 16, 24, 32}));
    EXPECT_EQ(c.num_labels(), 5);
    EXPECT_EQ(c.layer_norm_eps, 1e-6);
    if (std::string(file) != "hf_v2") {
      EXPECT_TRUE(has_note(m.load_warnings(), "ConvNeXt V2"));
    }
    EXPECT_TRUE(close(m.forward(px).logits, ref));
    // The body alone, as ConvNextV2Model.
    const auto body = ConvNextModel::from_pretrained(dir + "/" + file);
    EXPECT_EQ(body.forward(px).pooler_output.shape(), Shape({px.dim(0), 32}));
  }
}

// `convnext convert` of a timm and a facebookresearch V2 state dict: transformers-V2 files whose
// tensors equal the transformers layout's bit for bit, and `info` names the V2 class.
TEST(Layouts, ConvertWritesTransformersV2) {
  REQUIRE_LAYOUTS(dir);
  const auto hf = io::SafetensorsFile::open(dir + "/hf_v2/model.safetensors");
  for (const char* file : {"timm_v2_convmlp.safetensors", "fb_v2.pt"}) {
    SCOPED_TRACE(file);
    const std::string out = dir + "/converted_" + std::string(file).substr(0, std::string(file).find('.'));
    fs::remove_all(out);
    const CliRun r = run("convert --from " + dir + "/" + file + " --to " + out);
    ASSERT_EQ(r.status, 0) << r.err;
    const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(out + "/config.json"));
    EXPECT_EQ(cfg["model_type"], "convnextv2");
    EXPECT_EQ(cfg["architectures"], nlohmann::json::array({"ConvNextV2ForImageClassification"}));
    EXPECT_FALSE(cfg.contains("layer_scale_init_value"));
    const auto got = io::SafetensorsFile::open(out + "/model.safetensors");
    ASSERT_EQ(got->tensors().size(), hf->tensors().size());
    for (const io::TensorInfo& t : hf->tensors()) {
      ASSERT_TRUE(got->contains(t.name)) << t.name;
      EXPECT_EQ(got->find(t.name)->shape, t.shape) << t.name;
      EXPECT_TRUE(close(got->get_f32(t.name), hf->get_f32(t.name), 0.0)) << t.name;
    }
    const CliRun info = run("info --model " + dir + "/" + file + " --json");
    ASSERT_EQ(info.status, 0) << info.err;
    EXPECT_EQ(nlohmann::json::parse(info.out)["architecture"], "ConvNextV2ForImageClassification");
  }
}

// timm's convnext_*_ols: one line naming the file and why (the overlapping stem).
TEST(Layouts, TimmOlsIsRefusedWithTheReason) {
  REQUIRE_LAYOUTS(dir);
  const std::string file = dir + "/timm_v1_ols.safetensors";
  try {
    (void)ConvNextForImageClassification::from_pretrained(file);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file), std::string::npos) << m;
    EXPECT_NE(m.find("_ols"), std::string::npos) << m;
    EXPECT_NE(m.find("overlapping stem"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  const CliRun r = run("convert --from " + file + " --to " + dir + "/never");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("_ols"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace convnext::test
