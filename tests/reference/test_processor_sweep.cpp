// ConvNextImageProcessor (PIL backend) over a sweep the shared fixtures do not cover: all six
// Pillow filters x shortest_edge < 384 / == 383 / >= 384 x crop_pct (including > 1, where the
// numpy center crop pads with zeros), custom mean/std/rescale_factor, do_rescale / do_normalize /
// do_resize off, the legacy "size": 224 file, and grey / RGBA / palette / LA / EXIF-rotated PNG
// inputs. Ground truth: tests/reference/pil_processor_twin.py --sweep, an independent Pillow +
// numpy twin of transformers 5's ConvNextImageProcessorPil that first checks itself, bit for
// bit, against the real transformers outputs in ../shared/fixtures/hf/preprocess.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "convnext/image_processor.h"
#include "io/safetensors.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

// The fixtures allow 1e-6; both sides here are Pillow's integer resize plus the same float32 steps,
// so anything short of bit-identical is a bug: demand exact equality.
constexpr double kTol = 0.0;

fs::path sweep_dir() { return fs::path(CONVNEXT_GENERATED_DIR) / "processor_sweep"; }

#define REQUIRE_SWEEP()                                                                                      \
  do {                                                                                                       \
    if (!fs::exists(sweep_dir() / "cases.json") || !fs::exists(sweep_dir() / "expected.safetensors"))      \
      GTEST_SKIP() << sweep_dir() << " is missing or empty: run tests/reference/pil_processor_twin.py "     \
                   << "--sweep with /usr/bin/python3 (python3-pil, python3-numpy), or ctest, which runs " \
                   << "generate_processor_sweep first";                                                      \
  } while (0)

nlohmann::json load_cases() {
  std::ifstream in(sweep_dir() / "cases.json");
  return nlohmann::json::parse(in);
}

struct Outcome {
  bool ok = false;
  std::string what;  // why it failed, or the max |diff| when it passed
  bool bit_exact = false;
};

Outcome run_case(const nlohmann::json& c, const io::SafetensorsFile& expected) {
  Outcome o;
  const std::string name = c.at("name");
  try {
    const ImageProcessorConfig cfg = ImageProcessorConfig::from_json_string(c.at("processor_config").dump(), name);
    const ImageU8 img = ConvNextImageProcessor::load_image((sweep_dir() / c.at("image").get<std::string>()).string(), 3);
    const Tensor ours3 = ConvNextImageProcessor(cfg, ImageBackend::Pil).preprocess(img);
    const Tensor ours = ours3.reshape({1, ours3.dim(0), ours3.dim(1), ours3.dim(2)});
    if (!expected.contains(name)) {
      o.what = "no tensor '" + name + "' in expected.safetensors";
      return o;
    }
    const Tensor ref = expected.get_f32(name);
    if (ours.shape() != ref.shape()) {
      o.what = "shape " + shape_str(ours.shape()) + " vs twin " + shape_str(ref.shape()) + " (decoded image " +
               std::to_string(img.width) + "x" + std::to_string(img.height) + ")";
      return o;
    }
    double max_err = 0.0;
    int64_t worst = -1, differ = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      const double e = std::fabs(static_cast<double>(ours[i]) - static_cast<double>(ref[i]));
      if (ours[i] != ref[i]) ++differ;
      if (!(e <= max_err)) {  // NaN counts as the worst
        max_err = std::isnan(e) ? INFINITY : e;
        worst = i;
      }
    }
    std::ostringstream s;
    s << "max |ours - twin| " << max_err;
    if (worst >= 0) {
      const int64_t H = ref.dim(2), W = ref.dim(3);
      s << " at [c " << worst / (H * W) << ", y " << (worst / W) % H << ", x " << worst % W << "]: ours " << ours[worst]
        << ", twin " << ref[worst];
    }
    s << "; " << differ << " of " << ref.numel() << " elements differ";
    o.what = s.str();
    o.ok = max_err <= kTol;
    o.bit_exact = differ == 0;
  } catch (const std::exception& e) {
    o.what = std::string("threw: ") + e.what();
  }
  return o;
}

// Every case of the sweep, each reported on its own; one summary line lists the failures.
TEST(ProcessorSweep, EveryCaseMatchesTheTwin) {
  REQUIRE_SWEEP();
  const nlohmann::json cases = load_cases();
  const auto expected = io::SafetensorsFile::open((sweep_dir() / "expected.safetensors").string());
  ASSERT_TRUE(cases.is_array());
  ASSERT_GE(cases.size(), 40u) << "sweep too small: regenerate it";
  std::vector<std::string> failed;
  int bit_exact = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name");
    const Outcome o = run_case(c, *expected);
    EXPECT_TRUE(o.ok) << name << " (image " << c.at("image").get<std::string>() << ", processor_config "
                      << c.at("processor_config").dump() << "): " << o.what;
    if (!o.ok) failed.push_back(name);
    bit_exact += o.bit_exact;
  }
  std::string list;
  for (const std::string& f : failed) list += "\n  " + f;
  EXPECT_TRUE(failed.empty()) << failed.size() << " of " << cases.size() << " sweep cases differ from the twin:" << list;
  std::printf("[ProcessorSweep] %zu cases, %zu within %g, %d bit-identical\n", cases.size(), cases.size() - failed.size(),
              kTol, bit_exact);
}

// The sweep is what it claims to be: every filter meets shortest_edge < 384, == 383 and >= 384
// and a crop that pads, and the option cases are there (guards against a shrunken generator).
TEST(ProcessorSweep, CoversEveryFilterAndSizeClass) {
  REQUIRE_SWEEP();
  const nlohmann::json cases = load_cases();
  std::set<std::pair<int, std::string>> seen;
  std::set<std::string> images;
  bool legacy_int = false, no_rescale = false, no_normalize = false, no_resize = false, custom_rescale = false;
  for (const auto& c : cases) {
    const ImageProcessorConfig cfg = ImageProcessorConfig::from_json_string(c.at("processor_config").dump());
    const auto& j = c.at("processor_config");
    images.insert(c.at("image").get<std::string>());
    legacy_int |= j.contains("size") && j["size"].is_number_integer();
    no_rescale |= !cfg.do_rescale && cfg.do_normalize;
    no_normalize |= !cfg.do_normalize;
    no_resize |= !cfg.do_resize;
    custom_rescale |= cfg.rescale_factor != 1.0 / 255.0;
    if (!cfg.do_resize) continue;
    const int64_t S = cfg.shortest_edge;
    if (S >= 384) {
      seen.insert({cfg.resample, ">=384"});
    } else {
      seen.insert({cfg.resample, S == 383 ? "==383" : "<384"});
      if (static_cast<int64_t>(static_cast<double>(S) / cfg.crop_pct) < S) seen.insert({cfg.resample, "pad"});
    }
  }
  for (int f = 0; f <= 5; ++f)
    for (const char* cls : {"<384", "==383", ">=384", "pad"})
      EXPECT_TRUE(seen.count({f, cls})) << "no case with resample " << f << " and " << cls;
  EXPECT_TRUE(legacy_int) << "no legacy \"size\": int config";
  EXPECT_TRUE(no_rescale) << "no do_rescale=false + do_normalize=true case";
  EXPECT_TRUE(no_normalize) << "no do_normalize=false case";
  EXPECT_TRUE(no_resize) << "no do_resize=false case";
  EXPECT_TRUE(custom_rescale) << "no custom rescale_factor case";
  for (const char* img : {"grey_45x70.png", "rgba_70x45.png"}) EXPECT_TRUE(images.count(img)) << img << " unused";
}

}  // namespace
}  // namespace convnext::test
