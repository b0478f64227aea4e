// ConvNextImageProcessor against transformers' own outputs (../shared/fixtures/hf/preprocess):
// the PIL backend must give the same float32 numbers (≤ 1e-6), the torchvision backend must be
// within one uint8 step after normalisation (1/255/std).
#include <fstream>
#include <nlohmann/json.hpp>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

struct PreprocessFixtures {
  std::shared_ptr<io::SafetensorsFile> expected;
  nlohmann::json meta;
};

PreprocessFixtures load() {
  PreprocessFixtures f;
  f.expected = io::SafetensorsFile::open(fixture("preprocess/expected.safetensors"));
  std::ifstream in(fixture("preprocess/meta.json"));
  f.meta = nlohmann::json::parse(in);
  return f;
}

ImageU8 rgb_image(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo* t = f.find("rgb/" + name);
  const auto v = f.get_i64("rgb/" + name);
  ImageU8 img;
  img.height = t->shape[0];
  img.width = t->shape[1];
  img.channels = t->shape.size() == 3 ? t->shape[2] : 1;
  img.pixels.assign(v.begin(), v.end());
  return img;
}

// max |ours − ref| per channel must be ≤ tol[c].
::testing::AssertionResult within(const Tensor& ours, const Tensor& ref, const std::vector<double>& tol) {
  if (ours.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(ours.shape()) << " vs " << shape_str(ref.shape());
  const int64_t C = ref.dim(-3), HW = ref.dim(-1) * ref.dim(-2);
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const int64_t c = (i / HW) % C;
    const double d = std::fabs(static_cast<double>(ours[i]) - ref[i]);
    if (!(d <= tol[static_cast<size_t>(c)]))
      return ::testing::AssertionFailure() << "element " << i << ": ours " << ours[i] << " ref " << ref[i] << " (|diff| "
                                           << d << " > " << tol[static_cast<size_t>(c)] << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(Preprocess, EveryFixtureCase) {
  REQUIRE_FIXTURES();
  const PreprocessFixtures f = load();
  int slow = 0, fast = 0;
  for (const auto& c : f.meta["cases"]) {
    const std::string key = c["key"];
    SCOPED_TRACE(key);
    const bool is_fast = key.find("fast/") != std::string::npos;
    const auto cfg = ImageProcessorConfig::from_json_string(c["processor_config"].dump());
    const ConvNextImageProcessor proc(cfg, is_fast ? ImageBackend::Torchvision : ImageBackend::Pil);
    const Tensor ours = proc.preprocess(rgb_image(*f.expected, c["image"]));
    const Tensor ref = f.expected->get_f32(key);
    const Tensor ours4 = ours.reshape({1, ours.dim(0), ours.dim(1), ours.dim(2)});
    std::vector<double> tol(3, 1e-6);
    if (is_fast) {
      // One uint8 step after normalisation, plus float rounding.
      for (size_t ch = 0; ch < 3; ++ch)
        tol[ch] = (cfg.do_rescale ? cfg.rescale_factor : 1.0) / (cfg.do_normalize ? cfg.image_std[ch] : 1.0) * 1.0001 + 1e-6;
      ++fast;
    } else {
      ++slow;
    }
    EXPECT_TRUE(within(ours4, ref, tol));
  }
  EXPECT_EQ(slow + fast, 37);
}

TEST(Preprocess, BatchOfDifferentSizes) {
  REQUIRE_FIXTURES();
  const PreprocessFixtures f = load();
  nlohmann::json cfg_json;
  for (const auto& c : f.meta["cases"])
    if (c["key"] == "slow/s224_bicubic/chelsea") cfg_json = c["processor_config"];
  const ConvNextImageProcessor proc(ImageProcessorConfig::from_json_string(cfg_json.dump()));
  std::vector<ImageU8> images;
  for (const auto& name : f.meta["batch_images"]) images.push_back(rgb_image(*f.expected, name));
  EXPECT_TRUE(within(proc.preprocess(images), f.expected->get_f32("slow/batch/s224_bicubic"), {1e-6, 1e-6, 1e-6}));
}

TEST(Preprocess, LegacyFeatureExtractorConfigFile) {
  REQUIRE_FIXTURES();
  const PreprocessFixtures f = load();
  const auto pil = ConvNextImageProcessor::from_pretrained(fixture("preprocess/legacy_config"));
  EXPECT_EQ(pil.config().shortest_edge, 224);
  EXPECT_EQ(pil.config().resample, 3);
  EXPECT_DOUBLE_EQ(pil.config().rescale_factor, 1.0 / 255.0);  // absent from the file: the class default
  const ImageU8 img = rgb_image(*f.expected, "chelsea");
  Tensor ours = pil.preprocess(img);
  EXPECT_TRUE(within(ours.reshape({1, 3, 224, 224}), f.expected->get_f32("legacy/slow/chelsea"), {1e-6, 1e-6, 1e-6}));
  const auto tv = ConvNextImageProcessor::from_pretrained(fixture("preprocess/legacy_config"), ImageBackend::Torchvision);
  ours = tv.preprocess(img);
  std::vector<double> tol;
  for (double s : {0.229, 0.224, 0.225}) tol.push_back(1.0 / 255.0 / s * 1.0001 + 1e-6);
  EXPECT_TRUE(within(ours.reshape({1, 3, 224, 224}), f.expected->get_f32("legacy/fast/chelsea"), tol));
}

TEST(Preprocess, ConfigDefaultsAndTypeErrors) {
  const auto d = ImageProcessorConfig::from_json_string("{}");
  EXPECT_TRUE(d.do_resize);
  EXPECT_EQ(d.shortest_edge, 384);
  EXPECT_DOUBLE_EQ(d.crop_pct, 224.0 / 256.0);
  EXPECT_EQ(d.image_mean, (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_TRUE(d.do_rescale);
  EXPECT_TRUE(d.do_normalize);
  // Unknown keys are ignored; wrong types name the key.
  EXPECT_NO_THROW(ImageProcessorConfig::from_json_string(R"({"processor_class": "x", "do_center_crop": 3})"));
  for (const char* bad : {R"({"do_resize": "yes"})", R"({"size": "224"})", R"({"crop_pct": [1]})", R"({"resample": 2.5})",
                          R"({"image_mean": "imagenet"})", R"({"rescale_factor": null, "image_std": [1, "a", 2]})"}) {
    try {
      ImageProcessorConfig::from_json_string(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      const std::string key = nlohmann::json::parse(bad).items().begin().key();
      const std::string msg = e.what();
      EXPECT_TRUE(msg.find("'do_resize'") != std::string::npos || msg.find("'size'") != std::string::npos ||
                  msg.find("'crop_pct'") != std::string::npos || msg.find("'resample'") != std::string::npos ||
                  msg.find("'image_mean'") != std::string::npos || msg.find("'image_std'") != std::string::npos)
          << msg;
    }
  }
  EXPECT_THROW(ImageProcessorConfig::from_json_string(R"({"size": {"height": 224, "width": 224}})"), Error);
}

}  // namespace
}  // namespace convnext::test
