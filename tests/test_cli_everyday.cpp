// The everyday edges of the command line (issue 12, part 5): thread counts checked, `info` showing
// dtype and size and naming what a non-model file is, a missing hub id pointing at `convnext
// download`, `make-input` printing its labels, one preprocessor config for every command that
// makes a model directory, and SVGs whose text stays inside the picture.
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "cli_util.h"
#include "convnext/convnext.h"
#include "io/safetensors.h"
#include "train/evaluate.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

std::string repo(const std::string& rel) { return std::string(CONVNEXT_SOURCE_DIR) + "/" + rel; }

std::string scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("convnext_everyday_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

size_t lines_of(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// ---- --threads -------------------------------------------------------------------------------

// Every command that takes --threads, with arguments that are otherwise fine.
std::vector<std::string> commands_with_threads(const std::string& out) {
  const std::string img = repo("examples/images/bag_t10k_18.png"), demo = repo("models/convnext-demo");
  return {"classify --model " + demo + " " + img,
          "preprocess --processor " + demo + " --output " + out + "/p.safetensors " + img,
          "features --model " + demo + " --output " + out + "/f.safetensors " + img,
          "forward --model " + demo + " --input " + demo + "/sample_input.safetensors --output " + out + "/o.safetensors",
          "bench --arch tiny --size 32 --iters 1 --warmup 0",
          "train --config " + demo + "/config.json --data " + demo + "/sample_input.safetensors --output " + out + "/t --steps 1",
          "eval --model " + demo + " --data " + demo + "/sample_input.safetensors"};
}

TEST(CliThreads, OutOfRangeCountsAreOneLineErrorsInEveryCommand) {
  const std::string out = scratch("threads");
  for (const std::string& cmd : commands_with_threads(out))
    for (const char* bad : {"-3", "-1", "1025", "1000000", "lots"}) {
      const CliRun r = run(cmd + " --threads " + bad);
      EXPECT_EQ(r.status, 1) << cmd << " --threads " << bad << " (status -1: killed by a signal)";
      EXPECT_NE(r.err.find("--threads"), std::string::npos) << cmd << ": " << r.err;
      EXPECT_EQ(lines_of(r.err), 1u) << cmd << ": " << r.err;
    }
  fs::remove_all(out);
}

TEST(CliThreads, ZeroIsAutomaticAndPreprocessUsesTheCountGiven) {
  const std::string out = scratch("threads_ok");
  const std::string img = repo("examples/images/bag_t10k_18.png");
  const CliRun r = run("classify --threads 0 --model " + repo("models/convnext-demo") + " " + img);
  EXPECT_EQ(r.status, 0) << r.err;
  for (int n : {1, 3}) {
    const CliRun p = run("preprocess --repeat 1 --threads " + std::to_string(n) + " --processor " + repo("models/convnext-demo") +
                         " --output " + out + "/p.safetensors " + img + " " + img);
    ASSERT_EQ(p.status, 0) << p.err;
    EXPECT_EQ(nlohmann::json::parse(p.out.substr(0, p.out.find('\n')))["threads"].get<int>(), n) << p.out;
  }
  fs::remove_all(out);
}

// ---- make-input --labels -----------------------------------------------------------------------

// ---- --dtype int8 ------------------------------------------------------------------------------

// Every command that takes --dtype runs int8 and says so; forward's logits stay near fp32's.
TEST(CliInt8, EveryCommandWithDtypeRunsInt8) {
  const std::string out = scratch("int8");
  const std::string img = repo("examples/images/bag_t10k_18.png"), model = repo("models/convnext-fashion-mnist");
  const CliRun c = run("classify --model " + model + " --dtype int8 --json " + img);
  ASSERT_EQ(c.status, 0) << c.err;
  const CliRun c32 = run("classify --model " + model + " --json " + img);
  EXPECT_EQ(nlohmann::json::parse(c.out)["predictions"][0]["label"], nlohmann::json::parse(c32.out)["predictions"][0]["label"])
      << c.out;
  const CliRun b = run("bench --arch tiny --size 64 --iters 1 --warmup 0 --dtype int8 --json");
  ASSERT_EQ(b.status, 0) << b.err;
  const auto jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(jb["dtype"], "int8");
  const std::string k = jb["kernels"];
  EXPECT_TRUE(k == "avx512_vnni" || k == "portable_int8") << k;
  const std::string demo = repo("models/convnext-demo");
  for (const char* d : {"f32", "int8"})
    ASSERT_EQ(run("forward --model " + demo + " --input " + demo + "/sample_input.safetensors --output " + out + "/" + d +
                  ".safetensors --dtype " + d).status, 0) << d;
  const auto f32 = io::SafetensorsFile::open(out + "/f32.safetensors")->get_f32("logits");
  const auto int8 = io::SafetensorsFile::open(out + "/int8.safetensors")->get_f32("logits");
  EXPECT_TRUE(close(int8, f32, 5e-2));
  EXPECT_FALSE(close(int8, f32, 0.0)) << "forward --dtype int8 gave fp32's logits bit for bit";
  EXPECT_NE(run("forward --help").out.find("--dtype int8"), std::string::npos);
  const CliRun bad = run("convert --model " + demo + " --output " + out + "/c --dtype int8");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(lines_of(bad.err), 1u) << bad.err;
  fs::remove_all(out);
}

TEST(CliMakeInput, PrintsTheLabelsItChose) {
  const std::string out = scratch("make_input");
  const CliRun r = run("make-input --shape 5,3,8,8 --labels 4 --seed 7 --output " + out + "/in.safetensors");
  ASSERT_EQ(r.status, 0) << r.err;
  auto f = io::SafetensorsFile::open(out + "/in.safetensors");
  const std::vector<int64_t> labels = f->get_i64("labels");
  ASSERT_EQ(labels.size(), 5u);
  std::string expected = "labels [";
  for (size_t i = 0; i < labels.size(); ++i) expected += (i ? ", " : "") + std::to_string(labels[i]);
  EXPECT_NE(r.out.find(expected + "]"), std::string::npos) << r.out;
  // Without --labels there are none to print.
  const CliRun plain = run("make-input --shape 1,3,8,8 --output " + out + "/plain.safetensors");
  EXPECT_EQ(plain.out.find("labels"), std::string::npos) << plain.out;
  fs::remove_all(out);
}

// ---- hub ids -----------------------------------------------------------------------------------

TEST(CliHub, AnIdMissingFromTheCacheNamesConvnextDownload) {
  const std::string cache = scratch("empty_hub");
  ::setenv("HF_HUB_CACHE", cache.c_str(), 1);
  const CliRun r = run("info --model acme/convnext-nowhere");
  const CliRun rev = run("classify --model acme/convnext-nowhere@v2 " + repo("examples/images/bag_t10k_18.png"));
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("convnext download acme/convnext-nowhere"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(r.err), 1u) << r.err;
  EXPECT_NE(rev.err.find("convnext download acme/convnext-nowhere --revision v2"), std::string::npos) << rev.err;
  fs::remove_all(cache);
}

// ---- info --------------------------------------------------------------------------------------

TEST(CliInfo, ShowsDtypeParameterCountAndFileSize) {
  const std::string out = scratch("info");
  for (const auto& [flag, dtype] : std::vector<std::pair<std::string, std::string>>{
           {"f32", "float32"}, {"f16", "float16"}, {"bf16", "bfloat16"}}) {
    const std::string dir = out + "/" + flag;
    ASSERT_EQ(run("convert --from " + repo("models/convnext-demo") + " --to " + dir + " --dtype " + flag).status, 0);
    const CliRun j = run("info --json --model " + dir);
    ASSERT_EQ(j.status, 0) << j.err;
    const auto info = nlohmann::json::parse(j.out);
    EXPECT_EQ(info["dtype"], dtype);
    EXPECT_EQ(info["file_bytes"].get<int64_t>(), static_cast<int64_t>(fs::file_size(dir + "/model.safetensors")));
    EXPECT_EQ(info["parameters"].get<int64_t>(), 270298);
    const CliRun t = run("info --model " + dir);
    ASSERT_EQ(t.status, 0) << t.err;
    EXPECT_NE(t.out.find("dtype         " + dtype), std::string::npos) << t.out;
    EXPECT_NE(t.out.find("parameters    270,298"), std::string::npos) << t.out;
    // Bytes for people, then the exact count.
    EXPECT_TRUE(std::regex_search(t.out, std::regex("file size     [0-9.]+ (kB|MB) \\([0-9,]+ bytes\\)"))) << t.out;
    std::string digits = std::to_string(fs::file_size(dir + "/model.safetensors")), grouped;
    for (size_t i = 0; i < digits.size(); ++i) grouped += std::string(i && (digits.size() - i) % 3 == 0 ? "," : "") + digits[i];
    EXPECT_NE(t.out.find("(" + grouped + " bytes)"), std::string::npos) << t.out;
  }
  fs::remove_all(out);
}

TEST(CliInfo, AFileThatIsNotAModelIsNamedForWhatItIs) {
  const std::string out = scratch("not_models");
  {
    std::ofstream(out + "/notes.txt") << "shopping list\nmilk\n";
    std::ofstream bin(out + "/random.bin", std::ios::binary);
    uint32_t x = 12345;
    for (int i = 0; i < 4096; ++i) {
      x = x * 1664525u + 1013904223u;
      bin.put(static_cast<char>(x >> 24));
    }
  }
  // The start of a JFIF file is enough: the first bytes decide.
  std::ofstream(out + "/photo.jpg", std::ios::binary) << std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01", 13)
                                                       << std::string(64, '\0');
  struct Case {
    std::string path, kind;
  };
  for (const Case& c : {Case{repo("examples/images/bag_t10k_18.png"), "a PNG image"}, Case{out + "/photo.jpg", "a JPEG image"},
                        Case{out + "/notes.txt", "a text file"}, Case{out + "/random.bin", "unrecognised binary data"}}) {
    for (const std::string& json : {std::string(""), std::string(" --json")}) {
      const CliRun r = run("info --model " + c.path + json);
      EXPECT_EQ(r.status, 1) << c.path;
      EXPECT_NE(r.err.find(c.path + ": " + c.kind + ", not a model checkpoint"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("header length"), std::string::npos) << r.err;
      EXPECT_EQ(lines_of(r.err), 1u) << r.err;
    }
  }
  fs::remove_all(out);
}

// ---- preprocessor_config.json -------------------------------------------------------------------

// init, convert (of a checkpoint without a preprocessor config) and train write the same file.
void expect_same_processor_from_every_command(const std::string& out, const std::string& config_json, int64_t channels,
                                              int64_t size) {
  fs::create_directories(out + "/cfg");
  std::ofstream(out + "/cfg/config.json") << config_json;
  ASSERT_EQ(run("init --config " + out + "/cfg/config.json --output " + out + "/init").status, 0);
  fs::create_directories(out + "/bare");
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(out + "/init/" + f, out + "/bare/" + f);
  const CliRun c = run("convert --from " + out + "/bare --to " + out + "/converted");
  ASSERT_EQ(c.status, 0) << c.err;
  ASSERT_EQ(run("make-input --shape 4," + std::to_string(channels) + "," + std::to_string(size) + "," + std::to_string(size) +
                " --labels 3 --output " + out + "/data.safetensors").status, 0);
  const CliRun t = run("train --config " + out + "/cfg/config.json --data " + out + "/data.safetensors --output " + out +
                       "/trained --steps 1 --batch-size 4");
  ASSERT_EQ(t.status, 0) << t.err;
  const std::string made = read_text(out + "/init/preprocessor_config.json");
  ASSERT_FALSE(made.empty());
  EXPECT_EQ(read_text(out + "/converted/preprocessor_config.json"), made);
  EXPECT_EQ(read_text(out + "/trained/preprocessor_config.json"), made);
  // A directory without one keeps transformers' class defaults.
  EXPECT_EQ(ConvNextImageProcessor::from_pretrained(out + "/bare").config().shortest_edge, 384);
}

TEST(CliPreprocessorConfig, InitConvertAndTrainWriteTheSameOne) {
  const std::string out = scratch("processor");
  expect_same_processor_from_every_command(out + "/rgb", R"({"depths": [1, 1], "hidden_sizes": [8, 16], "num_stages": 2,
    "num_labels": 3, "image_size": 64})", 3, 64);
  const auto rgb = ImageProcessorConfig::from_file(out + "/rgb/init");
  EXPECT_EQ(rgb.shortest_edge, 64);  // config.image_size
  EXPECT_DOUBLE_EQ(rgb.crop_pct, 0.875);
  EXPECT_EQ(rgb.resample, 3);
  EXPECT_EQ(rgb.image_mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(rgb.image_std, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_DOUBLE_EQ(rgb.rescale_factor, 1.0 / 255.0);

  // A grey model: one mean/std value, so images are decoded to "L".
  expect_same_processor_from_every_command(out + "/grey", R"({"depths": [1, 1], "hidden_sizes": [8, 16], "num_stages": 2,
    "num_labels": 3, "image_size": 32, "num_channels": 1})", 1, 32);
  const auto grey = ImageProcessorConfig::from_file(out + "/grey/init");
  EXPECT_EQ(grey.image_mean, (std::vector<double>{0.459}));
  EXPECT_EQ(grey.image_std, (std::vector<double>{0.226}));
  EXPECT_EQ(ConvNextImageProcessor(grey).channels(), 1);
  fs::remove_all(out);
}

// At 224 it is what the facebook/convnext-*-224 repositories ship (their legacy file layout).
TEST(CliPreprocessorConfig, ConvNextTinyGetsThePublishedCheckpointsPreprocessing) {
  REQUIRE_FIXTURES();
  const std::string out = scratch("processor_tiny");
  ASSERT_EQ(run("init --arch tiny --output " + out + "/tiny").status, 0);
  const auto ours = ImageProcessorConfig::from_file(out + "/tiny");
  const auto published = ImageProcessorConfig::from_file(fixture("preprocess/legacy_config"));
  EXPECT_EQ(ours.shortest_edge, published.shortest_edge);
  EXPECT_EQ(ours.crop_pct, published.crop_pct);
  EXPECT_EQ(ours.resample, published.resample);
  EXPECT_EQ(ours.image_mean, published.image_mean);
  EXPECT_EQ(ours.image_std, published.image_std);
  EXPECT_EQ(ours.rescale_factor, published.rescale_factor);
  EXPECT_EQ(ours.do_resize && ours.do_rescale && ours.do_normalize, true);
  fs::remove_all(out);
}

// A recipe's own preprocessor config (beside its config.json) is the one a model made from it gets.
TEST(CliPreprocessorConfig, ARecipesOwnConfigIsKept) {
  const std::string out = scratch("processor_recipe");
  ASSERT_EQ(run("init --config " + repo("recipes/fashion-mnist/config.json") + " --output " + out + "/m").status, 0);
  const auto ours = ImageProcessorConfig::from_file(out + "/m");
  const auto recipe = ImageProcessorConfig::from_file(repo("recipes/fashion-mnist"));
  EXPECT_EQ(ours.to_json_string(), recipe.to_json_string());
  EXPECT_EQ(ours.shortest_edge, 32);
  fs::remove_all(out);
}

// ---- SVGs --------------------------------------------------------------------------------------

double attr(const std::string& tag, const std::string& name, double fallback) {
  std::smatch m;
  if (!std::regex_search(tag, m, std::regex("\\s" + name + "=\"([-0-9.e+]+)\""))) return fallback;
  return std::stod(m[1].str());
}

std::string unescape(std::string s) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&amp;", "&"}})
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  return s;
}

// Every <text> inside the viewBox, its width estimated at 0.6 em per character (sans-serif runs
// narrower on average) from its anchor, its height one em above the baseline.
::testing::AssertionResult text_inside(const std::string& svg) {
  std::smatch m;
  if (!std::regex_search(svg, m, std::regex("viewBox=\"0 0 ([0-9.]+) ([0-9.]+)\"")))
    return ::testing::AssertionFailure() << "no viewBox=\"0 0 W H\"";
  const double W = std::stod(m[1].str()), H = std::stod(m[2].str());
  std::smatch root;
  std::regex_search(svg, root, std::regex("<svg[^>]*>"));
  const double base_font = attr(root.str(), "font-size", 16);
  const std::regex text("<text([^>]*)>([^<]*)</text>");
  int n = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), text); it != std::sregex_iterator(); ++it, ++n) {
    const std::string tag = (*it)[1].str(), body = unescape((*it)[2].str());
    const double x = attr(tag, "x", 0), y = attr(tag, "y", 0), fs = attr(tag, "font-size", base_font);
    size_t chars = 0;
    for (unsigned char ch : body) chars += (ch & 0xC0) != 0x80;
    const double w = 0.6 * fs * static_cast<double>(chars);
    double x0 = x;
    if (tag.find("text-anchor=\"middle\"") != std::string::npos) x0 = x - w / 2;
    if (tag.find("text-anchor=\"end\"") != std::string::npos) x0 = x - w;
    if (x0 < 0 || x0 + w > W || y - fs < 0 || y > H)
      return ::testing::AssertionFailure() << "'" << body << "' spans x " << x0 << ".." << x0 + w << ", y " << y - fs << ".." << y
                                           << " in a " << W << "x" << H << " picture";
  }
  if (n == 0) return ::testing::AssertionFailure() << "no text at all";
  return ::testing::AssertionSuccess() << n << " texts inside";
}

train::EvalResult confusion_of(size_t classes, const std::string& name_stem) {
  train::EvalResult r;
  r.classification = true;
  r.count = 12345;
  r.top1 = 0.9209;
  for (size_t c = 0; c < classes; ++c) {
    r.class_names.push_back(name_stem + std::to_string(c));
    r.confusion.push_back(std::vector<int64_t>(classes, 3));
    r.confusion.back()[c] = 1000;
  }
  return r;
}

TEST(Svg, ConfusionMatrixTextStaysInsideThePicture) {
  const std::string out = scratch("svg");
  // Few classes (the title is wider than the grid), long class names, many classes.
  for (const auto& [classes, stem] : std::vector<std::pair<size_t, std::string>>{
           {2, "c"}, {3, "cat"}, {10, "T-shirt/top "}, {7, "a rather long class name number "}, {100, "n"}}) {
    train::write_confusion_svg(confusion_of(classes, stem), out + "/c.svg");
    EXPECT_TRUE(text_inside(read_text(out + "/c.svg"))) << classes << " classes named " << stem;
  }
  fs::remove_all(out);
}

// training.svg: a legend, a colour swatch per series inside the picture, not colours named in a caption.
::testing::AssertionResult has_legend(const std::string& svg, const std::vector<std::string>& names) {
  std::set<std::string> strokes;
  const std::regex polyline("<polyline[^>]*stroke=\"(#[0-9a-f]{6})\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), polyline); it != std::sregex_iterator(); ++it) strokes.insert((*it)[1].str());
  if (strokes.empty()) return ::testing::AssertionFailure() << "no series drawn";
  for (const std::string& colour : strokes)
    if (!std::regex_search(svg, std::regex("<rect [^>]*width=\"12\" height=\"12\" fill=\"" + colour + "\"")))
      return ::testing::AssertionFailure() << "no legend swatch for the series drawn in " << colour;
  for (const std::string& name : names)
    if (svg.find(">" + name + "</text>") == std::string::npos) return ::testing::AssertionFailure() << "no legend entry '" << name << "'";
  for (const char* caption : {"blue", "red", "green"})
    if (svg.find(caption) != std::string::npos) return ::testing::AssertionFailure() << "series named by colour: " << caption;
  return ::testing::AssertionSuccess();
}

TEST(Svg, TrainingCurvesHaveALegendAndTheirTextInside) {
  const std::string out = scratch("svg_training");
  train::TrainingCurves c;
  for (int s = 1; s <= 40; ++s) c.loss.push_back({static_cast<double>(s * 25), 2.3 / s + 1e4 * (s == 1)});  // a wide y range
  for (int e = 1; e <= 4; ++e) {
    c.eval_loss.push_back({e * 250.0, 1.0 / e});
    c.eval_accuracy.push_back({e * 250.0, 0.5 + 0.1 * e});
  }
  train::write_training_svg(out + "/t.svg", c);
  const std::string svg = read_text(out + "/t.svg");
  EXPECT_TRUE(text_inside(svg));
  EXPECT_TRUE(has_legend(svg, {"training", "evaluation", "top-1"}));
  // Without evaluation data the accuracy panel says so instead of drawing an empty legend.
  c.eval_loss.clear();
  c.eval_accuracy.clear();
  train::write_training_svg(out + "/t.svg", c);
  EXPECT_TRUE(text_inside(read_text(out + "/t.svg")));
  EXPECT_NE(read_text(out + "/t.svg").find("no data yet"), std::string::npos);
  fs::remove_all(out);
}

// The pictures that ship with the Fashion-MNIST model are drawn by the current code.
TEST(Svg, TheShippedModelsPicturesAreReadable) {
  const std::string dir = repo("models/convnext-fashion-mnist");
  const std::string training = read_text(dir + "/training.svg"), confusion = read_text(dir + "/confusion.svg");
  EXPECT_TRUE(text_inside(training));
  EXPECT_TRUE(has_legend(training, {"training", "evaluation", "top-1"}));
  EXPECT_TRUE(text_inside(confusion));
}

}  // namespace
}  // namespace convnext::test
