// ConvNextConfig: transformers' defaults, presets, backbone alignment, config.json round trip.
#include <fstream>

#include "convnext/convnext.h"
#include "test_util.h"

namespace convnext::test {
namespace {

TEST(Config, DefaultsAreTransformers) {
  ConvNextConfig c;
  c.validate_and_align();
  EXPECT_EQ(c.num_channels, 3);
  EXPECT_EQ(c.patch_size, 4);
  EXPECT_EQ(c.num_stages, 4);
  EXPECT_EQ(c.hidden_sizes, (std::vector<int64_t>{96, 192, 384, 768}));
  EXPECT_EQ(c.depths, (std::vector<int64_t>{3, 3, 9, 3}));
  EXPECT_EQ(c.hidden_act, "gelu");
  EXPECT_DOUBLE_EQ(c.initializer_range, 0.02);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  EXPECT_DOUBLE_EQ(c.layer_scale_init_value, 1e-6);
  EXPECT_DOUBLE_EQ(c.drop_path_rate, 0.0);
  EXPECT_EQ(c.image_size, 224);
  EXPECT_EQ(c.num_labels(), 2);  // PretrainedConfig's default
  EXPECT_EQ(c.stage_names, (std::vector<std::string>{"stem", "stage1", "stage2", "stage3", "stage4"}));
  EXPECT_EQ(c.out_features, (std::vector<std::string>{"stage4"}));
  EXPECT_EQ(c.out_indices, (std::vector<int64_t>{4}));
  // An empty JSON object gives the same.
  ConvNextConfig j = ConvNextConfig::from_json_string("{}");
  EXPECT_EQ(j.to_json_string(), c.to_json_string());
}

TEST(Config, PresetsHaveThePublishedParameterCounts) {
  // Counts of transformers' ConvNextForImageClassification (= torchvision's published num_params).
  EXPECT_EQ(ConvNextForImageClassification(ConvNextConfig::preset("tiny")).num_parameters(), 28589128);
  EXPECT_EQ(ConvNextForImageClassification(ConvNextConfig::preset("base")).num_parameters(), 88591464);
  const ConvNextConfig x = ConvNextConfig::preset("xlarge", 21841);
  EXPECT_EQ(x.hidden_sizes, (std::vector<int64_t>{256, 512, 1024, 2048}));
  EXPECT_EQ(x.depths, (std::vector<int64_t>{3, 3, 27, 3}));
  EXPECT_EQ(x.num_labels(), 21841);
  EXPECT_EQ(ConvNextConfig::preset("small").variant_name(), "small");
  EXPECT_EQ(ConvNextConfig::preset("large").variant_name(), "large");
  EXPECT_THROW(ConvNextConfig::preset("huge"), Error);
}

// ConvNeXt V2 presets (convert_convnextv2_to_pytorch.py's widths and depths): parameter counts as
// timm publishes them for convnextv2_atto ... convnextv2_tiny (timm's model = transformers' with
// the head), in millions rounded to 0.01; timm's small V1 models by name.
TEST(Config, V2PresetsHaveThePublishedParameterCounts) {
  const std::pair<const char*, double> published[] = {
      {"v2-atto", 3.71}, {"v2-femto", 5.23}, {"v2-pico", 9.07}, {"v2-nano", 15.62}, {"v2-tiny", 28.64}};
  for (const auto& [name, millions] : published) {
    const ConvNextConfig c = ConvNextConfig::preset(name);
    EXPECT_TRUE(c.is_v2()) << name;
    EXPECT_EQ(c.variant_name(), name);
    const int64_t n = ConvNextForImageClassification(c, 0, /*inference_only=*/true).num_parameters();
    EXPECT_NEAR(static_cast<double>(n) / 1e6, millions, 0.005) << name << ": " << n;
  }
  EXPECT_EQ(ConvNextConfig::preset("convnextv2-huge").hidden_sizes, (std::vector<int64_t>{352, 704, 1408, 2816}));
  EXPECT_EQ(ConvNextConfig::preset("v2-large").depths, (std::vector<int64_t>{3, 3, 27, 3}));
  EXPECT_EQ(ConvNextConfig::preset("v2-tiny").architectures, (std::vector<std::string>{"ConvNextV2ForImageClassification"}));
  const ConvNextConfig atto = ConvNextConfig::preset("atto");
  EXPECT_FALSE(atto.is_v2());
  EXPECT_EQ(atto.hidden_sizes, (std::vector<int64_t>{40, 80, 160, 320}));
  EXPECT_EQ(ConvNextConfig::preset("nano").depths, (std::vector<int64_t>{2, 2, 8, 2}));
  // The same widths, the other model type: no V1 preset matches a V2 config and vice versa.
  ConvNextConfig v1_tiny = ConvNextConfig::preset("v2-tiny");
  v1_tiny.model_type = "convnext";
  EXPECT_EQ(v1_tiny.variant_name(), "tiny");
  EXPECT_THROW(ConvNextConfig::preset("v2-small"), Error);  // no ConvNeXt V2 small
}

TEST(Config, V2ConfigJson) {
  const ConvNextConfig c = ConvNextConfig::from_json_string(R"({"model_type": "convnextv2"})");
  EXPECT_TRUE(c.is_v2());
  EXPECT_FALSE(c.has_layer_scale());
  const std::string j = c.to_json_string();
  EXPECT_NE(j.find("\"model_type\": \"convnextv2\""), std::string::npos) << j;
  EXPECT_EQ(j.find("layer_scale_init_value"), std::string::npos) << j;  // ConvNextV2Config has none
  EXPECT_EQ(architecture_name(Architecture::Backbone, true), std::string("ConvNextV2Backbone"));
  // Without model_type, the class names decide; both class names select the architecture.
  const auto by_class = ConvNextConfig::from_json_string(R"({"architectures": ["ConvNextV2Backbone"]})");
  EXPECT_TRUE(by_class.is_v2());
  EXPECT_EQ(by_class.architecture(), Architecture::Backbone);
  EXPECT_FALSE(ConvNextConfig::from_json_string(R"({"architectures": ["ConvNextModel"]})").is_v2());
  try {
    ConvNextConfig::from_json_string(R"({"model_type": "resnet"})", "r/config.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r/config.json: model_type is \"resnet\", expected 'convnext' or 'convnextv2'"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, BackboneAlignmentAsTransformers) {
  auto only_indices = ConvNextConfig::from_json_string(R"({"out_indices": [1, -1]})");
  EXPECT_EQ(only_indices.out_features, (std::vector<std::string>{"stage1", "stage4"}));
  EXPECT_EQ(only_indices.out_indices, (std::vector<int64_t>{1, 4}));
  auto only_features = ConvNextConfig::from_json_string(R"({"out_features": ["stem", "stage2"]})");
  EXPECT_EQ(only_features.out_indices, (std::vector<int64_t>{0, 2}));
  auto three = ConvNextConfig::from_json_string(R"({"depths": [1, 1, 1], "hidden_sizes": [4, 8, 16], "num_stages": 3})");
  EXPECT_EQ(three.out_features, (std::vector<std::string>{"stage3"}));
  EXPECT_EQ(three.stage_names.size(), 4u);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"out_features": ["stage2", "stage1"]})"), Error);  // order
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"out_features": ["stage1"], "out_indices": [2]})"), Error);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"out_indices": [1, 1]})"), Error);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"out_indices": [7]})"), Error);
  // null means "not set" (configs of transformers 4.26-4.27).
  EXPECT_EQ(ConvNextConfig::from_json_string(R"({"out_features": null})").out_features,
            (std::vector<std::string>{"stage4"}));
}

TEST(Config, LabelsFromId2LabelOrNumLabels) {
  auto a = ConvNextConfig::from_json_string(R"({"id2label": {"1": "dog", "0": "cat"}})");
  EXPECT_EQ(a.num_labels(), 2);
  EXPECT_EQ(a.id2label.at(1), "dog");
  EXPECT_EQ(ConvNextConfig::from_json_string(R"({"num_labels": 7})").num_labels(), 7);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"id2label": {"0": "a", "2": "b"}})"), Error);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"id2label": {"x": "a"}})"), Error);
  EXPECT_THROW(ConvNextConfig::from_json_string(R"({"problem_type": "ranking"})"), Error);
}

TEST(Config, ActivationNames) {
  EXPECT_EQ(parse_activation("gelu"), Activation::Gelu);
  EXPECT_EQ(parse_activation("gelu_new"), Activation::GeluTanh);
  EXPECT_EQ(parse_activation("gelu_pytorch_tanh"), Activation::GeluTanh);
  EXPECT_EQ(parse_activation("swish"), Activation::Silu);
  EXPECT_EQ(parse_activation("quick_gelu"), Activation::QuickGelu);
  EXPECT_THROW(parse_activation("prelu"), Error);
}

TEST(Config, RoundTripThroughJsonKeepsEveryField) {
  REQUIRE_FIXTURES();
  for (const char* dir : {"tiny4", "tiny4/backbone", "gray3_relu_noscale", "multilabel_gelunew", "fashion_mnist/model",
                          "v2_tiny4", "v2_tiny4/backbone"}) {
    if (!std::filesystem::exists(fixture(dir))) continue;
    const ConvNextConfig c = ConvNextConfig::from_file(fixture(dir));
    const ConvNextConfig back = ConvNextConfig::from_json_string(c.to_json_string());
    EXPECT_EQ(back.to_json_string(), c.to_json_string()) << dir;
    EXPECT_EQ(back.hidden_act, c.hidden_act);
    EXPECT_EQ(back.out_features, c.out_features);
    EXPECT_EQ(back.id2label, c.id2label);
    EXPECT_EQ(back.problem_type, c.problem_type);
    EXPECT_DOUBLE_EQ(back.layer_norm_eps, c.layer_norm_eps);
    EXPECT_DOUBLE_EQ(back.drop_path_rate, c.drop_path_rate);
  }
  // V2: transformers' own config.json, key for key (transformers_version and values as written).
  if (std::filesystem::exists(fixture("v2_tiny4"))) {
    std::ifstream in(fixture("v2_tiny4/config.json"));
    const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const ConvNextConfig v2 = ConvNextConfig::from_file(fixture("v2_tiny4"));
    EXPECT_TRUE(v2.is_v2());
    EXPECT_EQ(v2.to_json_string(), file);
  }
  // The written file has transformers' keys.
  const std::string j = ConvNextConfig::from_file(fixture("tiny4")).to_json_string();
  for (const char* key : {"\"model_type\": \"convnext\"", "\"label2id\"", "\"stage_names\"", "\"layer_norm_eps\": 1e-12",
                          "\"architectures\""})
    EXPECT_NE(j.find(key), std::string::npos) << key;
}

TEST(Config, LegacyHubConfigWithoutBackboneFields) {
  // facebook/convnext-tiny-224 as first uploaded: torch_dtype, no out_features / stage_names.
  auto c = ConvNextConfig::from_json_string(R"({"architectures": ["ConvNextForImageClassification"], "depths": [3,3,9,3],
    "drop_path_rate": 0.0, "hidden_act": "gelu", "hidden_sizes": [96,192,384,768], "image_size": 224,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "layer_scale_init_value": 1e-06, "model_type": "convnext",
    "num_channels": 3, "num_stages": 4, "patch_size": 4, "torch_dtype": "float32", "transformers_version": "4.17.0.dev0"})");
  EXPECT_EQ(c.variant_name(), "tiny");
  EXPECT_EQ(c.out_features, (std::vector<std::string>{"stage4"}));
}

}  // namespace
}  // namespace convnext::test
