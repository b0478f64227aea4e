// Checkpoints of timm, the original facebookresearch code and torchvision, loaded as transformers'
// ConvNeXt (issue 5, "Other namings"): name detection and mapping, shape fixes, config inference,
// and logits. tests/make_other_namings.py (Debian's python3-torch / python3-torchvision) writes
// tiny4's weights under each naming, and a torchvision convnext_tiny with its own float64 logits.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "convnext/convnext.h"
#include "convnext/error.h"
#include "io/key_mapping.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

// Runs the generator once per process; "" (and `why`) when it could not.
const std::string& other_namings(std::string& why) {
  static std::string reason;
  static const std::string dir = [] {
    const std::string out = std::string(CONVNEXT_GENERATED_DIR) + "/other_namings";
    const std::string fixture_dir = fixture("tiny4");
    if (!fs::exists(fixture_dir + "/model.safetensors")) {
      reason = "fixture " + fixture_dir + " not found";
      return std::string();
    }
    return run_generator(CONVNEXT_SOURCE_DIR "/tests/make_other_namings.py '" + fixture_dir + "' '" + out + "'", out,
                         "python3-torch or python3-torchvision (apt-get install -y python3-torchvision)", reason);
  }();
  why = reason;
  return dir;
}

#define REQUIRE_OTHER_NAMINGS(var)                                              \
  std::string why_;                                                             \
  const std::string& var = other_namings(why_);                                 \
  if (var.empty()) GTEST_SKIP() << why_


std::string load_error(const std::string& path) {
  try {
    (void)ConvNextForImageClassification::from_pretrained(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(KeyMapping, MapsEachNaming) {
  using io::Naming;
  using io::map_key_name;
  EXPECT_EQ(map_key_name(Naming::Timm, "stem.0.weight"), "convnext.embeddings.patch_embeddings.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "stem.1.bias"), "convnext.embeddings.layernorm.bias");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.2.downsample.1.weight"), "convnext.encoder.stages.2.downsampling_layer.1.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.1.blocks.4.conv_dw.weight"), "convnext.encoder.stages.1.layers.4.dwconv.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.1.blocks.4.mlp.fc2.bias"), "convnext.encoder.stages.1.layers.4.pwconv2.bias");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.0.blocks.0.gamma"), "convnext.encoder.stages.0.layers.0.layer_scale_parameter");
  EXPECT_EQ(map_key_name(Naming::Timm, "head.norm.weight"), "convnext.layernorm.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "head.fc.weight"), "classifier.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.0.blocks.0.mlp.grn.weight"), "convnext.encoder.stages.0.layers.0.grn.weight");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.3.blocks.2.mlp.grn.bias"), "convnext.encoder.stages.3.layers.2.grn.bias");
  EXPECT_EQ(map_key_name(Naming::Timm, "stages.0.blocks.0.mlp.grn.gamma"), "");  // timm names them weight, bias
  EXPECT_EQ(map_key_name(Naming::Original, "downsample_layers.0.1.weight"), "convnext.embeddings.layernorm.weight");
  EXPECT_EQ(map_key_name(Naming::Original, "downsample_layers.3.0.bias"), "convnext.encoder.stages.3.downsampling_layer.0.bias");
  EXPECT_EQ(map_key_name(Naming::Original, "stages.2.8.norm.weight"), "convnext.encoder.stages.2.layers.8.layernorm.weight");
  EXPECT_EQ(map_key_name(Naming::Original, "stages.2.8.gamma"), "convnext.encoder.stages.2.layers.8.layer_scale_parameter");
  EXPECT_EQ(map_key_name(Naming::Original, "norm.bias"), "convnext.layernorm.bias");
  EXPECT_EQ(map_key_name(Naming::Original, "head.weight"), "classifier.weight");
  EXPECT_EQ(map_key_name(Naming::Original, "stages.1.2.grn.gamma"), "convnext.encoder.stages.1.layers.2.grn.weight");
  EXPECT_EQ(map_key_name(Naming::Original, "stages.1.2.grn.beta"), "convnext.encoder.stages.1.layers.2.grn.bias");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "features.0.0.weight"), "convnext.embeddings.patch_embeddings.weight");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "features.4.1.weight"), "convnext.encoder.stages.2.downsampling_layer.1.weight");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "features.5.7.block.3.weight"), "convnext.encoder.stages.2.layers.7.pwconv1.weight");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "features.7.2.layer_scale"), "convnext.encoder.stages.3.layers.2.layer_scale_parameter");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "classifier.0.weight"), "convnext.layernorm.weight");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "classifier.2.bias"), "classifier.bias");
  EXPECT_EQ(map_key_name(Naming::Torchvision, "features.1.0.block.1.weight"), "");  // the Permute has no parameters
}

TEST(KeyMapping, DetectsNamingAndFixesShapes) {
  const io::KeyMapping tv = io::map_key_names({{"features.0.0.weight", {8, 3, 4, 4}}, {"features.1.0.layer_scale", {8, 1, 1}}}, "x");
  EXPECT_EQ(tv.naming, io::Naming::Torchvision);
  EXPECT_EQ(tv.hf_shape.at("convnext.encoder.stages.0.layers.0.layer_scale_parameter"), Shape({8}));
  const io::KeyMapping timm = io::map_key_names(
      {{"module.stem.0.weight", {8, 3, 4, 4}}, {"module.stages.0.blocks.0.mlp.fc1.weight", {32, 8, 1, 1}},
       {"module.stages.0.blocks.0.mlp.fc2.weight", {8, 32, 1, 1}}},
      "x");
  EXPECT_EQ(timm.naming, io::Naming::Timm);
  EXPECT_EQ(timm.stripped_prefix, "module.");
  EXPECT_EQ(timm.hf_of.at("module.stem.0.weight"), "convnext.embeddings.patch_embeddings.weight");
  EXPECT_EQ(timm.hf_shape.at("convnext.encoder.stages.0.layers.0.pwconv1.weight"), Shape({32, 8}));
  EXPECT_EQ(timm.hf_shape.at("convnext.encoder.stages.0.layers.0.pwconv2.weight"), Shape({8, 32}));
  // ConvNeXt V2: GRN makes the body "convnextv2."; timm's [4C] γ, β become transformers' [1,1,1,4C].
  const io::KeyMapping timm_v2 = io::map_key_names(
      {{"stem.0.weight", {8, 3, 4, 4}}, {"stages.0.blocks.0.mlp.grn.weight", {32}}, {"head.fc.bias", {5}}}, "x");
  EXPECT_EQ(timm_v2.hf_of.at("stem.0.weight"), "convnextv2.embeddings.patch_embeddings.weight");
  EXPECT_EQ(timm_v2.hf_of.at("head.fc.bias"), "classifier.bias");
  EXPECT_EQ(timm_v2.hf_shape.at("convnextv2.encoder.stages.0.layers.0.grn.weight"), Shape({1, 1, 1, 32}));
  const io::KeyMapping fb_v2 = io::map_key_names(
      {{"downsample_layers.0.0.weight", {8, 3, 4, 4}}, {"stages.0.0.grn.beta", {1, 1, 1, 32}}}, "x");
  EXPECT_EQ(fb_v2.naming, io::Naming::Original);
  EXPECT_EQ(fb_v2.hf_shape.at("convnextv2.encoder.stages.0.layers.0.grn.bias"), Shape({1, 1, 1, 32}));
  EXPECT_EQ(io::map_key_names({{"downsample_layers.0.0.weight", {8, 3, 4, 4}}}, "x").naming, io::Naming::Original);
  EXPECT_EQ(io::map_key_names({{"convnext.embeddings.patch_embeddings.weight", {8, 3, 4, 4}}}, "x").naming,
            io::Naming::Transformers);
  try {
    io::map_key_names({{"backbone.conv1.weight", {8, 3, 7, 7}}}, "f.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'backbone.conv1.weight'"), std::string::npos) << e.what();
  }
  try {
    io::map_key_names({{"stem.0.weight", {8, 3, 4, 4}}, {"stages.0.blocks.0.mlp.grn.gamma", {1, 1, 1, 32}}}, "f");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'stages.0.blocks.0.mlp.grn.gamma'"), std::string::npos) << e.what();
  }
}

// timm's _ols models (overlapping two-convolution stem) have no ConvNextConfig: one line saying why.
TEST(KeyMapping, TimmOlsStemIsRefusedWithTheReason) {
  for (const auto& stem : {std::map<std::string, Shape>{{"stem.0.weight", {20, 3, 3, 3}}, {"stem.1.weight", {40, 20, 3, 3}},
                                                         {"stem.2.weight", {40}}},
                           std::map<std::string, Shape>{{"stem.0.weight", {16, 3, 3, 3}}, {"stem.2.weight", {32, 16, 3, 3}},
                                                         {"stem.3.weight", {32}}}}) {
    std::map<std::string, Shape> sd = stem;
    sd["stages.0.blocks.0.conv_dw.weight"] = {40, 1, 7, 7};
    try {
      io::map_key_names(sd, "convnext_atto_ols.safetensors");
      FAIL() << "no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("convnext_atto_ols.safetensors: "), std::string::npos) << m;
      EXPECT_NE(m.find("_ols"), std::string::npos) << m;
      EXPECT_NE(m.find("overlapping stem"), std::string::npos) << m;
      EXPECT_NE(m.find("ConvNextConfig"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

TEST(KeyMapping, UnknownNamingIsOneLineNamingFileAndKey) {
  const fs::path dir = fs::temp_directory_path() / ("convnext_keymap_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string f = (dir / "resnet.safetensors").string();
  save_tensors(f, {{"conv1.weight", Tensor({4, 3, 3, 3})}, {"fc.weight", Tensor({2, 4})}});
  const std::string err = load_error(f);
  EXPECT_NE(err.find(f), std::string::npos) << err;
  EXPECT_NE(err.find("'conv1.weight'"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  // transformers names in a lone file still need their config.json.
  const std::string hf = (dir / "hf.safetensors").string();
  save_tensors(hf, {{"convnext.embeddings.patch_embeddings.weight", Tensor({4, 3, 4, 4})}});
  EXPECT_NE(load_error(hf).find("need their config.json"), std::string::npos) << load_error(hf);
  fs::remove_all(dir);
}

// tiny4 renamed, beside tiny4's config.json: exactly transformers' logits.
TEST(KeyMapping, RenamedTiny4WithConfigMatchesTransformers) {
  REQUIRE_OTHER_NAMINGS(dir);
  const auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  const Tensor px = e->get_f32("pixel_values"), ref = e->get_f32("logits");
  for (const char* naming : {"timm", "original", "torchvision"}) {
    SCOPED_TRACE(naming);
    const auto m = ConvNextForImageClassification::from_pretrained(dir + "/" + naming + "_with_config");
    EXPECT_TRUE(has_note(m.load_warnings(), "mapped to transformers names"));
    EXPECT_FALSE(has_note(m.load_warnings(), "inferred"));
    EXPECT_EQ(m.config().id2label.at(0), "class_0");  // from config.json
    EXPECT_TRUE(close(m.forward(px).logits, ref));
  }
}

// The same files alone: the config is inferred (final LayerNorm eps 1e-6 instead of tiny4's 1e-12,
// so the logits differ from transformers' by a little).
TEST(KeyMapping, RenamedTiny4WithoutConfigInfersIt) {
  REQUIRE_OTHER_NAMINGS(dir);
  const auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  const Tensor px = e->get_f32("pixel_values"), ref = e->get_f32("logits");
  for (const char* file : {"timm.safetensors", "original.pth", "original_train.pth", "torchvision.pth"}) {
    SCOPED_TRACE(file);
    const auto m = ConvNextForImageClassification::from_pretrained(dir + "/" + file);
    const ConvNextConfig& c = m.config();
    EXPECT_EQ(c.depths, std::vector<int64_t>({1, 1, 2, 1}));
    EXPECT_EQ(c.hidden_sizes, std::vector<int64_t>({8, 16, 32, 48}));
    EXPECT_EQ(c.num_channels, 3);
    EXPECT_EQ(c.patch_size, 4);
    EXPECT_EQ(c.num_labels(), 5);
    EXPECT_GT(c.layer_scale_init_value, 0.0);
    EXPECT_EQ(c.layer_norm_eps, 1e-6);
    EXPECT_TRUE(has_note(m.load_warnings(), "inferred depths [1, 1, 2, 1]"));
    EXPECT_TRUE(close(m.forward(px).logits, ref, 1e-3));
  }
  // A directory with one such file and no config.json.
  const fs::path d = fs::path(dir) / "original_no_config";
  fs::create_directories(d);
  fs::copy_file(fs::path(dir) / "original.pth", d / "checkpoint.pth", fs::copy_options::overwrite_existing);
  const auto m = ConvNextForImageClassification::from_pretrained(d.string());
  EXPECT_TRUE(has_note(m.load_warnings(), "facebookresearch"));
  EXPECT_TRUE(close(m.forward(px).logits, ref, 1e-3));
  // As ConvNextModel: the head is left out, with a warning.
  const auto body = ConvNextModel::from_pretrained(dir + "/torchvision.pth");
  EXPECT_EQ(body.forward(px).pooler_output.shape(), Shape({px.dim(0), 48}));
}

// A real torchvision convnext_tiny (random weights) without config: torchvision's own float64 logits.
TEST(KeyMapping, TorchvisionConvNextTinyMatchesTorchvision) {
  REQUIRE_OTHER_NAMINGS(dir);
  const auto m = ConvNextForImageClassification::from_pretrained(dir + "/torchvision_convnext_tiny.pth");
  const ConvNextConfig& c = m.config();
  EXPECT_EQ(c.depths, std::vector<int64_t>({3, 3, 9, 3}));
  EXPECT_EQ(c.hidden_sizes, std::vector<int64_t>({96, 192, 384, 768}));
  EXPECT_EQ(c.num_labels(), 1000);
  EXPECT_EQ(c.variant_name(), "tiny");
  for (const auto& w : m.load_warnings()) std::printf("  note: %s\n", w.c_str());
  const Tensor px = load_tensor(dir + "/torchvision_convnext_tiny_expected.safetensors", "pixel_values");
  const Tensor ref = load_tensor(dir + "/torchvision_convnext_tiny_expected.safetensors", "logits");
  EXPECT_TRUE(close(m.forward(px).logits, ref));
}

}  // namespace
}  // namespace convnext::test
