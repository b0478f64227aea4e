// Image decoding against Pillow 9.4, byte for byte: tests/pil_decode_ref.py (run with Debian's
// /usr/bin/python3 and its python3-pil) writes images of every supported format and variant plus
// the pixels of ImageOps.exif_transpose(Image.open(f)).convert("RGB") and .convert("L"); we decode
// the same files and compare. Those tests skip when /usr/bin/python3 has no PIL.
// The bad-input tests build their files here (libjpeg, zlib, by hand) and never skip.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <jpeglib.h>  // after <cstdio>: it needs FILE and size_t

#include "convnext/error.h"
#include "image/decode.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;
using image::ColorMode;
using image::DecodeOptions;
using image::Image;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// ---- Pillow references --------------------------------------------------------------------------

struct RefCase {
  std::string name;
  int64_t width = 0, height = 0;
};

struct References {
  bool available = false;
  std::string why;
  fs::path dir;
  std::vector<RefCase> cases;
};

const References& references() {
  static const References refs = [] {
    References r;
    r.dir = fs::temp_directory_path() / ("convnext_decode_ref_" + std::to_string(::getpid()));
    fs::remove_all(r.dir);
    const fs::path script = fs::path(__FILE__).parent_path() / "pil_decode_ref.py";
    const std::string cmd = "/usr/bin/python3 " + script.string() + " " + r.dir.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    if (p) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    }
    const int st = p ? pclose(p) : -1;
    const int code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code != 0) {
      r.why = code == 77 ? "/usr/bin/python3 has no PIL (apt-get install python3-pil)"
                         : "pil_decode_ref.py failed (status " + std::to_string(code) + "): " + out;
      return r;
    }
    std::istringstream manifest(read_file(r.dir / "manifest.txt"));
    RefCase c;
    while (manifest >> c.name >> c.width >> c.height) r.cases.push_back(c);
    r.available = !r.cases.empty();
    if (!r.available) r.why = "pil_decode_ref.py wrote an empty manifest";
    return r;
  }();
  return refs;
}

class PillowReference : public ::testing::Environment {
 public:
  void TearDown() override {
    const References& r = references();
    if (!r.dir.empty()) fs::remove_all(r.dir);
  }
};
[[maybe_unused]] ::testing::Environment* const kCleanup = ::testing::AddGlobalTestEnvironment(new PillowReference);

#define REQUIRE_PILLOW()                                                      \
  do {                                                                        \
    if (!references().available) GTEST_SKIP() << references().why;           \
  } while (0)

::testing::AssertionResult same_pixels(const Image& ours, const std::string& ref, int64_t w, int64_t h, int64_t c) {
  if (ours.width != w || ours.height != h || ours.channels != c)
    return ::testing::AssertionFailure() << "size " << ours.width << "x" << ours.height << "x" << ours.channels
                                         << ", Pillow " << w << "x" << h << "x" << c;
  if (ref.size() != ours.pixels.size())
    return ::testing::AssertionFailure() << "reference has " << ref.size() << " bytes";
  int64_t diffs = 0, first = -1, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int d = std::abs(int{ours.pixels[i]} - int{static_cast<uint8_t>(ref[i])});
    if (d != 0 && first < 0) first = static_cast<int64_t>(i);
    diffs += d != 0;
    max_diff = std::max<int64_t>(max_diff, d);
  }
  if (diffs == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diffs << " of " << ref.size() << " bytes differ (max " << max_diff
                                       << "), first at byte " << first << " (pixel " << first / c << ")";
}

// Decodes every reference case whose name starts with one of the prefixes, as RGB and as L.
void check_cases(std::initializer_list<const char*> prefixes, size_t expect_at_least) {
  const References& r = references();
  size_t checked = 0;
  for (const RefCase& rc : r.cases) {
    bool match = false;
    for (const char* p : prefixes) match = match || rc.name.rfind(p, 0) == 0;
    if (!match) continue;
    SCOPED_TRACE(rc.name);
    const fs::path file = r.dir / rc.name;
    try {
      const Image rgb = image::load_image(file.string(), ColorMode::RGB);
      EXPECT_TRUE(same_pixels(rgb, read_file(file.string() + ".rgb"), rc.width, rc.height, 3)) << rc.name << " RGB";
      const Image grey = image::load_image(file.string(), ColorMode::L);
      EXPECT_TRUE(same_pixels(grey, read_file(file.string() + ".l"), rc.width, rc.height, 1)) << rc.name << " L";
    } catch (const Error& e) {
      ADD_FAILURE() << rc.name << ": " << e.what();
    }
    ++checked;
  }
  EXPECT_GE(checked, expect_at_least);
}

// Tests get a scratch directory; bad-input helpers check the one-line error.
class Decode : public TempDirTest {
 protected:

  std::string put(const std::string& name, const std::string& bytes) const {
    write_file(dir_ / name, bytes);
    return (dir_ / name).string();
  }
  // Decoding `name` must throw one line that names the file and contains every one of `words`.
  void expect_error(const std::string& name, const std::string& bytes, std::initializer_list<const char*> words,
                    const DecodeOptions& opt = {}) const {
    const std::string path = put(name, bytes);
    for (ColorMode mode : {ColorMode::RGB, ColorMode::L}) {
      try {
        image::load_image(path, mode, opt);
        ADD_FAILURE() << name << ": decoded without error";
      } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
        for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << ": not a convnext::Error: " << e.what();
      }
    }
  }
};

TEST_F(Decode, JpegMatchesPillow) {
  REQUIRE_PILLOW();
  check_cases({"jpeg_"}, 30);
}

TEST_F(Decode, PngMatchesPillow) {
  REQUIRE_PILLOW();
  check_cases({"png_"}, 45);
}

TEST_F(Decode, WebpMatchesPillow) {
  REQUIRE_PILLOW();
  check_cases({"webp_"}, 6);
}

TEST_F(Decode, BmpMatchesPillow) {
  REQUIRE_PILLOW();
  check_cases({"bmp_"}, 16);
}

TEST_F(Decode, PnmMatchesPillow) {
  REQUIRE_PILLOW();
  check_cases({"pnm_"}, 13);
}

// The same files with exif_transpose off: the stored orientation, whatever the EXIF says.
TEST_F(Decode, ExifTransposeCanBeTurnedOff) {
  REQUIRE_PILLOW();
  const fs::path dir = references().dir;
  DecodeOptions no_transpose;
  no_transpose.exif_transpose = false;
  const Image upright = image::load_image((dir / "jpeg_exif_1.jpg").string());
  for (int o = 1; o <= 8; ++o) {
    const Image raw = image::load_image((dir / ("jpeg_exif_" + std::to_string(o) + ".jpg")).string(), ColorMode::RGB,
                                        no_transpose);
    EXPECT_EQ(raw.width, upright.width) << o;
    EXPECT_EQ(raw.pixels, upright.pixels) << o;
  }
}

TEST_F(Decode, DecodeImageFromMemoryMatchesLoadImage) {
  REQUIRE_PILLOW();
  const fs::path file = references().dir / "png_rgba8.png";
  const std::string bytes = read_file(file);
  const Image a = image::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.png",
                                      ColorMode::RGB, {});
  EXPECT_EQ(a.pixels, image::load_image(file.string()).pixels);
}

// Timing, not a check: a 4000x3000 q90 4:2:0 JPEG of smooth random content, Pillow's
// Image.open(p).convert("RGB") and our load_image, median of 5 each, in one run. Run with
//   convnext_tests --gtest_also_run_disabled_tests --gtest_filter=Decode.DISABLED_Benchmark4000x3000Jpeg
TEST_F(Decode, DISABLED_Benchmark4000x3000Jpeg) {
  REQUIRE_PILLOW();
  const fs::path script = fs::path(__FILE__).parent_path() / "pil_decode_ref.py";
  const fs::path jpg = dir_ / "bench_4000x3000_q90_420.jpg";
  FILE* p = popen(("/usr/bin/python3 " + script.string() + " --bench " + jpg.string()).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512];
  while (fgets(line, sizeof line, p)) std::printf("%s", line);
  ASSERT_EQ(pclose(p), 0);
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const Image img = image::load_image(jpg.string());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(img.width, 4000);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("convnext load_image(RGB) median of 5: %.1f ms\n", ms[2]);
}

// ---- files built here -----------------------------------------------------------------------------

// A baseline JPEG from libjpeg (3 components, 4:2:0).
std::string make_jpeg(int w, int h, bool progressive = false) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<uint8_t> row(static_cast<size_t>(w) * 3);
  while (c.next_scanline < c.image_height) {
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < 3; ++k) row[static_cast<size_t>(3 * x + k)] = static_cast<uint8_t>((x * 3 + c.next_scanline * 5 + k * 70) & 255);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  jpeg_destroy_compress(&c);
  free(buf);
  return out;
}

std::string be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string td = type + data;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()));
  return be32(static_cast<uint32_t>(data.size())) + td + be32(static_cast<uint32_t>(crc));
}

// An 8-bit RGB PNG with header dimensions w x h and image data for data_w x data_h.
std::string make_png(uint32_t w, uint32_t h, uint32_t data_w = 0, uint32_t data_h = 0) {
  if (data_w == 0) data_w = w, data_h = h;
  std::string ihdr = be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  std::string raw;
  for (uint32_t y = 0; y < data_h; ++y) {
    raw.push_back('\0');
    for (uint32_t x = 0; x < data_w * 3; ++x) raw.push_back(static_cast<char>((x * 7 + y * 11) & 255));
  }
  uLongf zn = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zn, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &zn, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()));
  z.resize(zn);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", z) + png_chunk("IEND", "");
}

TEST_F(Decode, GoodFilesBuiltHereDecode) {
  const Image j = image::load_image(put("ok.jpg", make_jpeg(33, 17)));
  EXPECT_EQ(j.width, 33);
  EXPECT_EQ(j.height, 17);
  EXPECT_EQ(j.channels, 3);
  const Image p = image::load_image(put("ok.png", make_png(5, 4)), ColorMode::L);
  EXPECT_EQ(p.width, 5);
  EXPECT_EQ(p.channels, 1);
}

TEST_F(Decode, EmptyFile) { expect_error("empty.jpg", "", {"empty"}); }

TEST_F(Decode, MissingFile) {
  try {
    image::load_image((dir_ / "nope.png").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.png: cannot open"), std::string::npos) << e.what();
  }
}

TEST_F(Decode, Directory) {
  try {
    image::load_image(dir_.string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

TEST_F(Decode, NotAnImage) {
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng() & 0x7f);  // never a known signature
  noise[0] = 'x';
  expect_error("noise.jpg", noise, {"not an image"});
  expect_error("text.png", "hello, I am a text file\n", {"not an image"});
  expect_error("model.safetensors", std::string("\x10\0\0\0\0\0\0\0{}", 10), {"not an image"});
}

TEST_F(Decode, UnsupportedFormat) {
  expect_error("anim.gif", std::string("GIF89a\x01\0\x01\0\0\0\0;", 13), {"unsupported image format (GIF)"});
  expect_error("scan.tif", std::string("II*\0\x08\0\0\0", 8), {"unsupported image format (TIFF)"});
  expect_error("p7.pam", "P7\nWIDTH 1\n", {"not an image"});  // PAM: Pillow 9.4 does not know it either
  expect_error("cmyk.pnm", "P0CMYK 1 1 255\n0000", {"unsupported PNM variant 'P0CMYK'"});
}

TEST_F(Decode, TruncatedJpeg) {
  for (bool progressive : {false, true}) {
    const std::string jpg = make_jpeg(64, 48, progressive);
    // Pillow raises "image file is truncated" for every one of these cuts, even a missing EOI only.
    for (size_t cut : {size_t{2}, size_t{3}, size_t{50}, jpg.size() / 2, jpg.size() - 200}) {
      SCOPED_TRACE(cut);
      expect_error("cut.jpg", jpg.substr(0, jpg.size() - cut), {"truncated JPEG"});
    }
    expect_error("header_only.jpg", jpg.substr(0, 40), {"JPEG"});
  }
  // Junk after the EOI is fine (Pillow ignores it too), and so is a file that ends after the last
  // scanline inside a marker (Pillow's libjpeg source suspends there and the image counts as complete).
  const std::string small = make_jpeg(8, 8);
  const Image img = image::load_image(put("ok.jpg", small));
  EXPECT_EQ(image::load_image(put("junk.jpg", small + "trailing junk")).pixels, img.pixels);
  const std::string no_eoi = small.substr(0, small.size() - 2);
  for (const std::string& tail : {std::string("\xff\xdb", 2), std::string("\xff\xc4\x00\x20\x10", 5)})
    EXPECT_EQ(image::load_image(put("tail.jpg", no_eoi + tail)).pixels, img.pixels) << tail.size();
}

TEST_F(Decode, TruncatedPng) {
  const std::string png = make_png(40, 30);
  const size_t idat_end = png.size() - 12;  // the IEND chunk is the last 12 bytes
  for (size_t keep : {size_t{20}, size_t{40}, idat_end / 2, idat_end - 20}) {
    SCOPED_TRACE(keep);
    expect_error("cut.png", png.substr(0, keep), {"PNG"});
  }
  expect_error("cut_in_idat.png", png.substr(0, idat_end - 20), {"truncated PNG"});
  expect_error("signature_only.png", png.substr(0, 8), {"truncated PNG"});
  // All rows decodable, the file cut in the zlib checksum, the IDAT CRC or before IEND: Pillow's
  // decoder stops at the last row and load_end stops quietly at the end of the file, and so do we.
  const Image full = image::load_image(put("full.png", png));
  for (size_t cut : {size_t{12}, size_t{14}, size_t{16}, size_t{18}, size_t{20}}) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(image::load_image(put("tail.png", png.substr(0, png.size() - cut))).pixels, full.pixels);
  }
  // ...but a chunk after the image data that is cut short makes Pillow's load_end raise.
  expect_error("cut_text.png", png.substr(0, idat_end) + be32(100) + "tEXtabc", {"truncated PNG"});
}

TEST_F(Decode, PngBadCrc) {
  const std::string png = make_png(16, 16);
  std::string ihdr_flip = png;
  ihdr_flip[8 + 8 + 5] ^= 0x01;  // a byte of IHDR's data (the height): the CRC no longer matches
  expect_error("ihdr.png", ihdr_flip, {"CRC"});
  std::string idat_flip = png;
  idat_flip[8 + 25 + 8 + 10] ^= 0x40;  // inside the IDAT data
  expect_error("idat.png", idat_flip, {"PNG"});
  // An ancillary chunk before IDAT with a bad CRC: Pillow raises ("broken PNG file"), so do we.
  std::string text = png_chunk("tEXt", std::string("Comment\0hi", 10));
  text[text.size() - 1] ^= 0xff;
  expect_error("text.png", png.substr(0, 33) + text + png.substr(33), {"CRC"});
}

TEST_F(Decode, DecompressionBomb) {
  // 20000 x 20000 = 400 M pixels: refused from the header, before any pixel memory is allocated.
  const char* words[] = {"400000000 pixels exceeds the limit of 89478485", "--max-pixels"};
  auto check = [&](const std::string& name, const std::string& bytes) {
    expect_error(name, bytes, {words[0], words[1]});
  };
  check("bomb.png", make_png(20000, 20000, 1, 1));
  std::string jpg = make_jpeg(16, 16);
  const size_t sof = jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  jpg[sof + 5] = static_cast<char>(20000 >> 8), jpg[sof + 6] = static_cast<char>(20000 & 255);  // height
  jpg[sof + 7] = static_cast<char>(20000 >> 8), jpg[sof + 8] = static_cast<char>(20000 & 255);  // width
  check("bomb.jpg", jpg);
  check("bomb.pgm", "P5 20000 20000 255\n" + std::string(100, '\0'));
  std::string bmp = "BM" + std::string(12, '\0') + std::string("\x28\0\0\0", 4);
  for (uint32_t v : {20000u, 20000u}) bmp += std::string{static_cast<char>(v), static_cast<char>(v >> 8), 0, 0};
  bmp += std::string("\x01\0\x18\0", 4) + std::string(24, '\0') + std::string(64, '\0');
  check("bomb.bmp", bmp);
  // WebP lossless header: 16384 x 16384 = 268435456 pixels.
  std::string vp8l = std::string("\x2f", 1);
  const uint32_t bits = 16383u | (16383u << 14);
  for (int i = 0; i < 4; ++i) vp8l.push_back(static_cast<char>(bits >> (8 * i)));
  vp8l += std::string(20, '\0');
  auto le32 = [](uint32_t v) { return std::string{static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16), static_cast<char>(v >> 24)}; };
  const std::string webp = "RIFF" + le32(static_cast<uint32_t>(12 + vp8l.size())) + "WEBPVP8L" + le32(static_cast<uint32_t>(vp8l.size())) + vp8l;
  expect_error("bomb.webp", webp, {"268435456 pixels exceeds the limit"});
  // A limit of our own, and 0 = none.
  DecodeOptions small;
  small.max_pixels = 100;
  expect_error("small.png", make_png(11, 10), {"110 pixels exceeds the limit of 100"}, small);
  DecodeOptions none;
  none.max_pixels = 0;
  EXPECT_EQ(image::load_image(put("ok.png", make_png(11, 10)), ColorMode::RGB, none).width, 11);
}

TEST_F(Decode, CorruptHeaders) {
  expect_error("short.bmp", "BM\0\0", {"truncated BMP"});
  expect_error("rle.bmp", "BM" + std::string(12, '\0') + std::string("\x28\0\0\0\x02\0\0\0\x02\0\0\0\x01\0\x08\0\x01\0\0\0", 20) +
                              std::string(2000, '\0'), {"RLE8"});
  expect_error("nodims.ppm", "P6\n", {"truncated PNM"});
  expect_error("badnum.ppm", "P6 12x 4 255\n", {"not a number"});
  expect_error("maxval.ppm", "P6 1 1 70000\n", {"maxval"});
  expect_error("short.ppm", "P6 4 4 255\n" + std::string(47, 'x'), {"truncated PNM"});
  expect_error("zero.pgm", "P5 0 4 255\n", {"no pixels"});
  expect_error("webp_junk.webp", std::string("RIFF\x20\0\0\0WEBPVP8 ", 16) + std::string(24, '\x55'), {"WebP"});
}

// Random damage to valid files: every outcome is an image or a convnext::Error, never a crash
// (this is the part that matters most under ASan/UBSan).
TEST_F(Decode, MutatedFilesNeverCrash) {
  std::vector<std::string> seeds = {make_jpeg(24, 16), make_jpeg(24, 16, true), make_png(12, 9),
                                    "P6 3 2 255\n" + std::string(18, 'a'), "P2 2 2 9\n1 2 3 4\n"};
  if (references().available)
    for (const char* n : {"png_adam7_pal4.png", "webp_lossy_alpha.webp", "bmp_16_565.bmp", "jpeg_exif_6.jpg",
                          "png_raw_profile_ztxt_6.png", "bmp_8_short_palette.bmp", "webp_animated.webp"})
      seeds.push_back(read_file(references().dir / n));
  std::mt19937 rng(1234);
  int decoded = 0, errors = 0;
  for (const std::string& seed : seeds) {
    for (int iter = 0; iter < 60; ++iter) {
      std::string bytes = seed;
      const int kind = iter % 3;
      if (kind == 0) {
        bytes.resize(rng() % bytes.size());
      } else {
        const int flips = 1 + static_cast<int>(rng() % 8);
        for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
      try {
        const Image img = image::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "fuzz",
                                              iter % 2 ? ColorMode::L : ColorMode::RGB, {});
        EXPECT_EQ(img.pixels.size(), static_cast<size_t>(img.width * img.height * img.channels));
        ++decoded;
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("fuzz: ", 0), 0u) << e.what();
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace convnext::test
