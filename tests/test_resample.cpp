// resize_pil against Pillow itself: random images (seeded) go to a temporary directory, one run
// per test of tests/pil_resize_ref.py under /usr/bin/python3 (Debian's python3-pil;
// CONVNEXT_PIL_PYTHON overrides) resizes them with Pillow, and every result must match ours byte
// for byte. Without numpy/Pillow the comparisons skip with a message.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "convnext/error.h"
#include "image/resample.h"

namespace convnext::image {
namespace {

namespace fs = std::filesystem;

const char* filter_name(Filter f) {
  static const char* names[] = {"NEAREST", "LANCZOS", "BILINEAR", "BICUBIC", "BOX", "HAMMING"};
  return names[static_cast<int>(f)];
}

const std::vector<Filter> kAllFilters = {Filter::Nearest, Filter::Lanczos, Filter::Bilinear,
                                         Filter::Bicubic, Filter::Box,     Filter::Hamming};

enum class Content { Noise, Binary, Smooth };

// Noise: uniform bytes. Binary: 0/255 blocks, the worst case for overshoot and clipping.
// Smooth: gradients plus mild noise, like a photo. Alpha channels (C = 2, 4) mix 0, 255 and
// random values so that premultiplication hits its special cases.
Image make_image(int64_t w, int64_t h, int64_t c, uint64_t seed, Content content) {
  Image im(w, h, c);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255), small(-12, 12), pick(0, 3);
  const int64_t block = 1 + static_cast<int64_t>(seed % 5);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t ch = 0; ch < c; ++ch) {
        int v = 0;
        if ((c == 2 || c == 4) && ch == c - 1) {
          const int p = pick(rng);
          v = p == 0 ? 0 : p == 1 ? 255 : byte(rng);
        } else if (content == Content::Noise) {
          v = byte(rng);
        } else if (content == Content::Binary) {
          v = (((x / block) + (y / block) + ch) % 2) ? 255 : 0;
          if (byte(rng) < 16) v = 255 - v;
        } else {
          const int64_t ramp = (x * 255) / std::max<int64_t>(1, w - 1) + (y * 97) / std::max<int64_t>(1, h - 1);
          v = static_cast<int>((ramp + ch * 40) % 256) + small(rng);
        }
        im.pixels[static_cast<size_t>((y * w + x) * c + ch)] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
  return im;
}

struct Case {
  std::string group, name;
  int64_t w, h, c, out_w, out_h;
  Filter filter;
  Content content;
  uint64_t seed;
  Image in, ref;  // generated, and Pillow's result, when the group is prepared
  bool have_ref = false;
};

std::vector<Case> build_cases() {
  std::vector<Case> cases;
  auto add = [&](const std::string& group, int64_t w, int64_t h, int64_t c, int64_t ow, int64_t oh, Filter f,
                 Content content = Content::Noise) {
    std::ostringstream name;
    name << group << "_" << w << "x" << h << "c" << c << "_to_" << ow << "x" << oh << "_" << filter_name(f) << "_"
         << static_cast<int>(content);
    cases.push_back({group, name.str(), w, h, c, ow, oh, f, content, 1000003ull * cases.size() + 17, {}, {}, false});
  };
  // Every filter, every channel count (L, LA, RGB, RGBA), down, up, and mixed.
  for (Filter f : kAllFilters)
    for (int64_t c : {1, 2, 3, 4}) {
      add("filters", 97, 61, c, 40, 23, f);
      add("filters", 31, 23, c, 80, 57, f);
      add("filters", 123, 77, c, 45, 98, f, Content::Smooth);
      add("filters", 64, 64, c, 100, 37, f, Content::Binary);
      add("filters", 64, 64, c, 21, 150, f, Content::Binary);
    }
  for (Filter f : kAllFilters)
    for (int64_t c : {1, 3}) {
      // ConvNeXt at 224 with crop_pct 0.875: shortest edge to 224 / 0.875 = 256, landscape and
      // portrait; a VGA photo; an upscale.
      add("convnext", 451, 300, c, 384, 256, f, Content::Smooth);
      add("convnext", 300, 451, c, 256, 384, f, Content::Smooth);
      add("convnext", 640, 480, c, 341, 256, f);
      add("convnext", 224, 224, c, 256, 256, f);
      // Extreme aspect ratios.
      add("aspect", 700, 90, c, 224, 29, f);
      add("aspect", 90, 700, c, 29, 224, f);
      add("aspect", 1000, 3, c, 7, 50, f);
      // One-pixel rows and columns, 1x1 in and out.
      add("thin", 1, 50, c, 1, 17, f);
      add("thin", 1, 50, c, 5, 80, f);
      add("thin", 50, 1, c, 17, 1, f);
      add("thin", 50, 1, c, 80, 3, f);
      add("thin", 1, 1, c, 7, 5, f);
      add("thin", 1, 1, c, 224, 224, f);
      add("thin", 13, 11, c, 1, 1, f);
      add("thin", 1, 257, c, 1, 1, f);
      add("thin", 257, 1, c, 3, 1, f);
      add("thin", 1, 1, c, 1, 1, f);
      add("thin", 4000, 1, c, 1, 1, f);  // one output over 4000 taps (LANCZOS: a 24001-tap kernel)
      add("thin", 1, 1, c, 2000, 1, f);
      add("thin", 3, 1, c, 3000, 2, f);
      // Tiny inputs blown up.
      add("tiny", 2, 3, c, 224, 224, f);
      add("tiny", 2, 3, c, 341, 256, f);
      add("tiny", 9, 7, c, 224, 224, f);
      add("tiny", 9, 7, c, 341, 256, f, Content::Binary);
      // Only one dimension changes: one pass is skipped.
      add("one_axis", 37, 23, c, 37, 50, f);
      add("one_axis", 37, 23, c, 80, 23, f);
      add("one_axis", 64, 48, c, 64, 20, f, Content::Binary);
      add("one_axis", 64, 48, c, 20, 48, f, Content::Binary);
    }
  // Same size: a copy.
  for (Filter f : kAllFilters)
    for (int64_t c : {1, 2, 3, 4}) add("same", 37, 23, c, 37, 23, f);
  // NEAREST's accumulated positions: large ratios and ratios that are not exact in binary.
  for (int64_t c : {1, 3}) {
    add("nearest", 3, 2, c, 1000, 999, Filter::Nearest);
    add("nearest", 7, 3, c, 1001, 3, Filter::Nearest);
    add("nearest", 10, 10, c, 30, 70, Filter::Nearest);
    add("nearest", 999, 100, c, 7, 3, Filter::Nearest);
    add("nearest", 1000, 1000, c, 3, 9, Filter::Nearest);
    add("nearest", 451, 300, c, 384, 256, Filter::Nearest);
    add("nearest", 49, 49, c, 1000, 1000, Filter::Nearest);
  }
  // Weight precision: noise through many distinct weights, where a weight one ulp off (say
  // HAMMING's 0.54f/0.46f taken as doubles) flips some 22-bit weight and then some output bytes.
  for (Filter f : {Filter::Hamming, Filter::Lanczos, Filter::Bicubic}) {
    add("precision", 563, 116, 3, 554, 165, f);
    add("precision", 524, 255, 3, 771, 96, f);
    add("precision", 567, 332, 3, 204, 536, f);
    add("precision", 485, 87, 1, 285, 27, f);
  }
  // The benchmark's resize, once: a 4000x3000 photo to 341x256.
  add("large", 4000, 3000, 3, 341, 256, Filter::Bicubic, Content::Smooth);
  return cases;
}

void write_raw(const fs::path& path, const Image& im) {
  std::ofstream f(path, std::ios::binary);
  f << im.width << " " << im.height << " " << im.channels << "\n";
  f.write(reinterpret_cast<const char*>(im.pixels.data()), static_cast<std::streamsize>(im.pixels.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

bool read_raw(const fs::path& path, Image& im) {
  std::ifstream f(path, std::ios::binary);
  int64_t w = 0, h = 0, c = 0;
  if (!(f >> w >> h >> c) || f.get() != '\n' || w < 1 || h < 1 || c < 1 || c > 4) return false;
  im = Image(w, h, c);
  f.read(reinterpret_cast<char*>(im.pixels.data()), static_cast<std::streamsize>(im.pixels.size()));
  return static_cast<bool>(f);
}

// Each test prepares only its own groups (ctest runs every test in its own process): the
// group's images are generated, written, resized by Pillow in one Python run, and read back.
class Resample : public ::testing::Test {
 protected:
  struct Prepared {
    bool skip = false;
    std::string message;  // why it skips, or what failed; empty when ready
  };

  static std::vector<Case>& cases() {
    static std::vector<Case> all = build_cases();
    return all;
  }

  static const Prepared& prepare(const std::string& group) {
    static std::map<std::string, Prepared> done;
    auto it = done.find(group);
    if (it == done.end()) it = done.emplace(group, run_pillow(group)).first;
    return it->second;
  }

  static Prepared run_pillow(const std::string& group) {
    const char* env_python = std::getenv("CONVNEXT_PIL_PYTHON");
    const std::string python = env_python ? env_python : "/usr/bin/python3";
    const fs::path script = fs::path(__FILE__).parent_path() / "pil_resize_ref.py";
    if (!fs::exists(python)) return {true, python + " not found"};
    if (!fs::exists(script)) return {false, "reference script not found: " + script.string()};
    const fs::path dir = fs::temp_directory_path() / ("convnext_resample_" + std::to_string(::getpid()) + "_" + group);
    fs::remove_all(dir);
    fs::create_directories(dir);
    {
      std::ofstream manifest(dir / "manifest.txt");
      for (Case& k : cases()) {
        if (k.group != group) continue;
        k.in = make_image(k.w, k.h, k.c, k.seed, k.content);
        write_raw(dir / (k.name + ".in"), k.in);
        manifest << k.name << " " << k.out_w << " " << k.out_h << " " << static_cast<int>(k.filter) << "\n";
      }
    }
    const std::string cmd =
        "'" + python + "' '" + script.string() + "' '" + dir.string() + "' 2>'" + (dir / "stderr.txt").string() + "'";
    const int status = std::system(cmd.c_str());
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream err_file(dir / "stderr.txt");
    const std::string err((std::istreambuf_iterator<char>(err_file)), std::istreambuf_iterator<char>());
    Prepared p;
    if (rc == 77) {
      p = {true, "Pillow/numpy unavailable: " + err};
    } else if (rc != 0) {
      p = {false, "pil_resize_ref.py failed (exit " + std::to_string(rc) + "): " + err};
    } else {
      std::ifstream ver(dir / "pillow_version.txt");
      std::getline(ver, pillow_version());
      for (Case& k : cases())
        if (k.group == group) k.have_ref = read_raw(dir / (k.name + ".out"), k.ref);
    }
    fs::remove_all(dir);
    return p;
  }

  static std::string& pillow_version() {
    static std::string v;
    return v;
  }

  // Every case of the group, ours against Pillow's, byte for byte.
  static void check_group(const std::string& group) {
    int n = 0;
    for (const Case& k : cases()) {
      if (k.group != group) continue;
      ++n;
      ASSERT_TRUE(k.have_ref) << k.name << ": no Pillow output";
      expect_same(resize_pil(k.in, k.out_w, k.out_h, k.filter), k.ref, k.name);
    }
    EXPECT_GT(n, 0) << "no cases in group " << group;
  }

  static void expect_same(const Image& ours, const Image& ref, const std::string& name) {
    ASSERT_EQ(ours.width, ref.width) << name;
    ASSERT_EQ(ours.height, ref.height) << name;
    ASSERT_EQ(ours.channels, ref.channels) << name;
    ASSERT_EQ(ours.pixels.size(), ref.pixels.size()) << name;
    int64_t bad = 0, first = -1;
    for (size_t i = 0; i < ref.pixels.size(); ++i)
      if (ours.pixels[i] != ref.pixels[i]) {
        if (first < 0) first = static_cast<int64_t>(i);
        ++bad;
      }
    if (bad == 0) return;
    const int64_t c = first % ref.channels, x = (first / ref.channels) % ref.width,
                  y = first / (ref.channels * ref.width);
    ADD_FAILURE() << name << ": " << bad << " of " << ref.pixels.size() << " bytes differ from Pillow "
                  << pillow_version() << "; first at x=" << x << " y=" << y << " c=" << c << ": ours "
                  << int(ours.pixels[first]) << ", Pillow " << int(ref.pixels[first]);
  }
};

// Prepares the group's Pillow references; skips without Pillow, fails when the script failed.
#define PREPARE_GROUP(group)                                   \
  do {                                                         \
    const Prepared& prepared = prepare(group);                 \
    if (prepared.skip) GTEST_SKIP() << prepared.message;       \
    ASSERT_TRUE(prepared.message.empty()) << prepared.message; \
  } while (0)

#define PILLOW_GROUP_TEST(test_name, group) \
  TEST_F(Resample, test_name) {             \
    PREPARE_GROUP(group);                   \
    check_group(group);                     \
  }

PILLOW_GROUP_TEST(AllFiltersAllChannelCounts, "filters")
PILLOW_GROUP_TEST(ConvNextSizes, "convnext")
PILLOW_GROUP_TEST(ExtremeAspectRatios, "aspect")
PILLOW_GROUP_TEST(OnePixelRowsColumnsAndImages, "thin")
PILLOW_GROUP_TEST(TinyInputsUpscaled, "tiny")
PILLOW_GROUP_TEST(OnlyOneDimensionChanges, "one_axis")
PILLOW_GROUP_TEST(NearestAccumulatedPositions, "nearest")
PILLOW_GROUP_TEST(WeightPrecision, "precision")
PILLOW_GROUP_TEST(LargePhotoToConvNextSize, "large")

TEST_F(Resample, SameSizeIsAnExactCopy) {
  PREPARE_GROUP("same");
  check_group("same");
  for (const Case& k : cases())
    if (k.group == "same") {
      EXPECT_EQ(resize_pil(k.in, k.out_w, k.out_h, k.filter).pixels, k.in.pixels) << k.name;
    }
}

TEST_F(Resample, ThreadCountDoesNotChangeTheResult) {
  PREPARE_GROUP("large");
  PREPARE_GROUP("convnext");
  for (const Case& k : cases()) {
    if (k.group != "large" && k.name.find("convnext_451x300c3") == std::string::npos) continue;
    for (int threads : {1, 2, 3}) {
      convnext::parallel::ThreadLimit limit(threads);
      expect_same(resize_pil(k.in, k.out_w, k.out_h, k.filter), k.ref, k.name + " threads=" + std::to_string(threads));
    }
  }
}

// Needs no Pillow.
TEST_F(Resample, RejectsBadSizesAndChannelCounts) {
  const Image rgb = make_image(5, 4, 3, 1, Content::Noise);
  EXPECT_THROW(resize_pil(rgb, 0, 4, Filter::Bicubic), Error);
  EXPECT_THROW(resize_pil(rgb, 4, 0, Filter::Nearest), Error);
  EXPECT_THROW(resize_pil(rgb, -3, 4, Filter::Bilinear), Error);
  EXPECT_THROW(resize_pil(Image(), 4, 4, Filter::Bicubic), Error);
  EXPECT_THROW(resize_pil(make_image(5, 4, 5, 1, Content::Noise), 4, 4, Filter::Bicubic), Error);
  Image truncated = rgb;
  truncated.pixels.pop_back();
  EXPECT_THROW(resize_pil(truncated, 4, 4, Filter::Bicubic), Error);
  EXPECT_THROW(resize_pil(rgb, 4, 4, static_cast<Filter>(6)), Error);
  EXPECT_NO_THROW(resize_pil(rgb, 1, 1, Filter::Lanczos));
}

}  // namespace
}  // namespace convnext::image
