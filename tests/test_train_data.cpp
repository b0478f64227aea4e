// Training data (src/train/data.h): every kind of source read back exactly, bad data sets failing
// at open with the file named, unreadable images skipped and counted, the loader reproducible
// whatever the number of workers, and RandomResizedCrop + flip agreeing with the processor
// where they must (an identity crop gives exactly the un-augmented pixels).
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "convnext/error.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/data.h"
#include "train/evaluate.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;
using train::Augment;
using train::Batch;
using train::DataSource;
using train::Loader;
using train::LoaderOptions;

const char* const kDebianFashion = "/usr/share/datasets/fashion-mnist";

// ---- writers for the files the tests build ----------------------------------

void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

// A minimal PNG (8-bit grey or RGB, no filtering) made with zlib, read back by the project's decoder.
std::string png_bytes(int64_t w, int64_t h, int64_t c, const std::vector<uint8_t>& px) {
  std::string raw;
  for (int64_t y = 0; y < h; ++y) {
    raw += '\0';  // filter type None
    raw.append(reinterpret_cast<const char*>(px.data()) + y * w * c, static_cast<size_t>(w * c));
  }
  uLongf zn = compressBound(raw.size());
  std::string z(zn, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &zn, reinterpret_cast<const Bytef*>(raw.data()), raw.size());
  z.resize(zn);
  auto chunk = [](std::string& out, const char* type, const std::string& data) {
    put_be32(out, static_cast<uint32_t>(data.size()));
    const std::string td = std::string(type, 4) + data;
    out += td;
    put_be32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()))));
  };
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(w));
  put_be32(ihdr, static_cast<uint32_t>(h));
  ihdr += std::string{8, static_cast<char>(c == 1 ? 0 : 2), 0, 0, 0};  // depth, colour type, compression, filter, interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  return out;
}

// A deterministic test pattern.
std::vector<uint8_t> pattern(int64_t n, int salt) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 37 + salt * 101 + (i * i) % 13) & 0xff);
  return v;
}

ImageU8 image_u8(int64_t w, int64_t h, int64_t c, std::vector<uint8_t> px) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.channels = c;
  img.pixels = std::move(px);
  return img;
}

ConvNextImageProcessor grey_processor(bool do_resize = false, int64_t size = 384) {
  ImageProcessorConfig c;
  c.do_resize = do_resize;
  c.shortest_edge = size;
  c.image_mean = {0.2860};
  c.image_std = {0.3530};
  return ConvNextImageProcessor(c);
}

ConvNextImageProcessor rgb_processor(bool do_resize, int64_t size, int resample = 3) {
  ImageProcessorConfig c;
  c.do_resize = do_resize;
  c.shortest_edge = size;
  c.resample = resample;
  c.image_mean = {0.485, 0.456, 0.406};
  c.image_std = {0.229, 0.224, 0.225};
  return ConvNextImageProcessor(c);
}

::testing::AssertionResult same(const Tensor& a, const Tensor& b) { return close(a, b, 0.0); }

Augment no_augment() {
  Augment a;
  a.enabled = false;
  return a;
}

class TrainData : public TempDirTest {
 protected:
  void write_gz(const std::string& rel, const std::string& bytes) const {
    fs::create_directories(fs::path(path(rel)).parent_path());
    gzFile f = gzopen(path(rel).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  }
  // An idx images file (magic 0x803) and its labels (0x801).
  static std::string idx_images(int64_t n, int64_t rows, int64_t cols, const std::vector<uint8_t>& px) {
    std::string s;
    for (uint32_t v : {0x803u, static_cast<uint32_t>(n), static_cast<uint32_t>(rows), static_cast<uint32_t>(cols)}) put_be32(s, v);
    return s + std::string(px.begin(), px.end());
  }
  static std::string idx_labels(const std::vector<uint8_t>& labels) {
    std::string s;
    put_be32(s, 0x801u);
    put_be32(s, static_cast<uint32_t>(labels.size()));
    return s + std::string(labels.begin(), labels.end());
  }
  // A png image `w`×`h` RGB with pattern `salt`; returns its pixels.
  std::vector<uint8_t> write_png(const std::string& rel, int64_t w, int64_t h, int salt) const {
    std::vector<uint8_t> px = pattern(w * h * 3, salt);
    write(rel, png_bytes(w, h, 3, px));
    return px;
  }

};

// ---- idx ----------------------------------------------------------------------

TEST_F(TrainData, DebianFashionMnistMatchesTheFixture) {
  if (!fs::exists(kDebianFashion)) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  const ConvNextImageProcessor proc = grey_processor();
  const auto train_set = DataSource::open(kDebianFashion, proc, 1, 10);
  EXPECT_EQ(train_set->size(), 60000);
  const auto test_set = DataSource::open(std::string(kDebianFashion) + ":test", proc, 1, 10);
  ASSERT_EQ(test_set->size(), 10000);
  EXPECT_EQ(DataSource::open(std::string(kDebianFashion) + ":train", proc, 1)->size(), 60000);
  const std::vector<std::string> names = test_set->class_names();
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(names[0], "T-shirt/top");
  EXPECT_EQ(names[9], "Ankle boot");
  EXPECT_FALSE(test_set->float_labels());

  // The fixture's pixel_values are ((x / 255 as float32) − 0.2860) / 0.3530 on the idx bytes,
  // read here independently of the source.
  gzFile f = gzopen((std::string(kDebianFashion) + "/t10k-images-idx3-ubyte.gz").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> raw(16 + 512 * 784);
  ASSERT_EQ(gzread(f, raw.data(), static_cast<unsigned>(raw.size())), static_cast<int>(raw.size()));
  gzclose(f);

  REQUIRE_FIXTURES();
  const ConvNextImageProcessor model_proc = ConvNextImageProcessor::from_pretrained(fixture("fashion_mnist/model"));
  const auto fixture_set = DataSource::open(std::string(kDebianFashion) + ":test", model_proc, 1, 10);
  const auto ref = io::SafetensorsFile::open(fixture("fashion_mnist/test_first512.safetensors"));
  const std::vector<int64_t> labels = ref->get_i64("labels");
  std::mt19937_64 rng(0);
  for (int64_t i = 0; i < 512; ++i) {
    const train::Example ex = fixture_set->get(i, no_augment(), rng);
    ASSERT_EQ(ex.label, labels[static_cast<size_t>(i)]) << "example " << i;
    ASSERT_EQ(ex.pixels.shape(), (Shape{1, 28, 28}));
    for (int64_t p = 0; p < 784; ++p) {
      const float x = static_cast<float>(raw[static_cast<size_t>(16 + i * 784 + p)]);
      ASSERT_EQ(ex.pixels[p], (x / 255.0f - 0.2860f) / 0.3530f) << "example " << i << " pixel " << p;
    }
  }
}

TEST_F(TrainData, IdxPlainAndGzipGiveTheSameExamples) {
  const std::vector<uint8_t> px = pattern(3 * 4 * 5, 1), labels = {2, 0, 1};
  write("plain/t10k-images-idx3-ubyte", idx_images(3, 4, 5, px));
  write("plain/t10k-labels-idx1-ubyte", idx_labels(labels));
  write_gz("gz/train-images-idx3-ubyte.gz", idx_images(3, 4, 5, px));
  write_gz("gz/train-labels-idx1-ubyte.gz", idx_labels(labels));
  const ConvNextImageProcessor proc = grey_processor();
  std::mt19937_64 rng(0);
  for (const std::string& spec : {path("plain") + ":test", path("gz"), path("gz") + ":train",
                                 path("gz/train-images-idx3-ubyte.gz"), path("plain/t10k-images-idx3-ubyte")}) {
    SCOPED_TRACE(spec);
    const auto src = DataSource::open(spec, proc, 1, 3);
    ASSERT_EQ(src->size(), 3);
    EXPECT_EQ(src->origin(), spec);
    EXPECT_EQ(src->class_names().size(), 10u);  // "0".."9": not Fashion-MNIST
    for (int64_t i = 0; i < 3; ++i) {
      const train::Example ex = src->get(i, no_augment(), rng);
      EXPECT_EQ(ex.label, labels[static_cast<size_t>(i)]);
      const std::vector<uint8_t> one(px.begin() + i * 20, px.begin() + (i + 1) * 20);
      EXPECT_TRUE(same(ex.pixels, proc.preprocess(image_u8(5, 4, 1, one))));  // width 5 = cols, height 4 = rows
    }
  }
  // The plain directory has no train split.
  EXPECT_THROW(DataSource::open(path("plain"), proc, 1), Error);

  // An RGB model gets the grey value in all three channels, as PIL's convert("RGB").
  const ConvNextImageProcessor rgb = rgb_processor(false, 384);
  const auto src = DataSource::open(path("gz"), rgb, 3);
  const std::vector<uint8_t> first(px.begin(), px.begin() + 20);
  std::vector<uint8_t> rep;
  for (uint8_t v : first) rep.insert(rep.end(), 3, v);
  EXPECT_TRUE(same(src->get(0, no_augment(), rng).pixels, rgb.preprocess(image_u8(5, 4, 3, rep))));
}

TEST_F(TrainData, BrokenIdxFilesAreErrorsNamingTheFile) {
  const std::vector<uint8_t> px = pattern(3 * 4 * 5, 2), labels = {0, 1, 2};
  const ConvNextImageProcessor proc = grey_processor();
  auto expect_error = [&](const std::string& spec, const std::string& needle, int64_t channels = 1) {
    try {
      DataSource::open(spec, proc, channels);
      ADD_FAILURE() << spec << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string images = idx_images(3, 4, 5, px);
  write("cut/train-images-idx3-ubyte", images.substr(0, images.size() - 1));
  write("cut/train-labels-idx1-ubyte", idx_labels(labels));
  expect_error(path("cut"), "cut/train-images-idx3-ubyte: truncated");

  write_gz("cutgz/train-images-idx3-ubyte.gz", images.substr(0, images.size() - 7));
  write_gz("cutgz/train-labels-idx1-ubyte.gz", idx_labels(labels));
  expect_error(path("cutgz"), "train-images-idx3-ubyte.gz: truncated");

  // A gzip stream cut short (the file itself truncated) is an error too.
  write_gz("rawcut/train-images-idx3-ubyte.gz", images);
  write("rawcut/train-labels-idx1-ubyte", idx_labels(labels));
  {
    std::ifstream in(path("rawcut/train-images-idx3-ubyte.gz"), std::ios::binary);
    const std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write("rawcut/train-images-idx3-ubyte.gz", gz.substr(0, gz.size() / 2));
  }
  expect_error(path("rawcut"), "train-images-idx3-ubyte.gz");

  write("magic/train-images-idx3-ubyte", idx_labels(labels));  // a labels file where images belong
  write("magic/train-labels-idx1-ubyte", idx_labels(labels));
  expect_error(path("magic"), "magic number 0x00000801, expected 0x00000803");

  write("count/train-images-idx3-ubyte", images);
  write("count/train-labels-idx1-ubyte", idx_labels({0, 1}));
  expect_error(path("count"), "3 images but");

  write("range/train-images-idx3-ubyte", images);
  write("range/train-labels-idx1-ubyte", idx_labels({0, 7, 1}));
  try {
    DataSource::open(path("range"), proc, 1, 5);
    ADD_FAILURE() << "label 7 accepted for 5 labels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-labels-idx1-ubyte: example 1: label 7 is out of range"), std::string::npos) << e.what();
  }
  // A grey processor cannot feed an RGB model.
  write("ok/train-images-idx3-ubyte", images);
  write("ok/train-labels-idx1-ubyte", idx_labels(labels));
  expect_error(path("ok"), "the model takes 3 input channels but its image processor gives 1", 3);
}

// ---- image folders and CSV -----------------------------------------------------

TEST_F(TrainData, ImageFolderClassesAndFilesSorted) {
  const auto cat_b = write_png("data/cat/b.png", 7, 5, 1);
  const auto cat_a = write_png("data/cat/a.PNG", 6, 5, 2);
  const auto cat_sub = write_png("data/cat/more/c.png", 5, 5, 3);
  // A PPM written by hand: the decoder reads PNM too.
  std::vector<uint8_t> dog_px = pattern(4 * 3 * 3, 4);
  write("data/dog/x.ppm", "P6\n4 3\n255\n" + std::string(dog_px.begin(), dog_px.end()));
  write("data/dog/notes.txt", "not an image");
  const ConvNextImageProcessor proc = rgb_processor(true, 8);
  const auto src = DataSource::open(path("data"), proc, 3, 2);
  ASSERT_EQ(src->size(), 4);
  EXPECT_EQ(src->class_names(), (std::vector<std::string>{"cat", "dog"}));
  std::mt19937_64 rng(0);
  const std::vector<std::pair<std::vector<uint8_t>, std::pair<int64_t, int64_t>>> expected = {
      {cat_a, {6, 5}}, {cat_b, {7, 5}}, {cat_sub, {5, 5}}, {dog_px, {4, 3}}};  // a.PNG < b.png, then more/
  for (int64_t i = 0; i < 4; ++i) {
    const train::Example ex = src->get(i, no_augment(), rng);
    EXPECT_EQ(ex.label, i < 3 ? 0 : 1);
    const auto& [px, wh] = expected[static_cast<size_t>(i)];
    EXPECT_TRUE(same(ex.pixels, proc.preprocess(image_u8(wh.first, wh.second, 3, px)))) << "example " << i;
  }
  // More classes than the model has labels.
  EXPECT_THROW(DataSource::open(path("data"), proc, 3, 1), Error);

  fs::create_directories(path("data/empty_class/sub"));
  try {
    DataSource::open(path("data"), proc, 3);
    ADD_FAILURE() << "empty class folder accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty_class"), std::string::npos) << e.what();
  }
  // No class folders at all.
  write("flat/a.png", png_bytes(2, 2, 1, {1, 2, 3, 4}));
  EXPECT_THROW(DataSource::open(path("flat"), proc, 3), Error);
  EXPECT_THROW(DataSource::open(path("missing"), proc, 3), Error);
}

TEST_F(TrainData, CsvWithNamesAndIds) {
  const auto p0 = write_png("img/0.png", 4, 4, 5);
  const auto p1 = write_png("img/1.png", 4, 4, 6);
  const auto p2 = write_png("img/with, comma.png", 4, 4, 7);
  write("names.csv", "path,label\nimg/0.png,zebra\r\n\n\"img/with, comma.png\",ant\n" + path("img/1.png") + " , zebra\n");
  const ConvNextImageProcessor proc = rgb_processor(true, 4);
  const auto names = DataSource::open(path("names.csv"), proc, 3, 2);
  ASSERT_EQ(names->size(), 3);
  EXPECT_EQ(names->class_names(), (std::vector<std::string>{"ant", "zebra"}));
  std::mt19937_64 rng(0);
  const int64_t want_labels[] = {1, 0, 1};
  const std::vector<uint8_t>* want_px[] = {&p0, &p2, &p1};
  for (int64_t i = 0; i < 3; ++i) {
    const train::Example ex = names->get(i, no_augment(), rng);
    EXPECT_EQ(ex.label, want_labels[i]);
    EXPECT_TRUE(same(ex.pixels, proc.preprocess(image_u8(4, 4, 3, *want_px[i]))));
  }

  write("ids.csv", "img/0.png,3\nimg/1.png,0\nimg/0.png,-100\n");
  const auto ids = DataSource::open(path("ids.csv"), proc, 3, 4);
  ASSERT_EQ(ids->size(), 3);
  EXPECT_TRUE(ids->class_names().empty());
  EXPECT_EQ(ids->get(0, no_augment(), rng).label, 3);
  EXPECT_EQ(ids->get(2, no_augment(), rng).label, -100);
  try {
    DataSource::open(path("ids.csv"), proc, 3, 3);
    ADD_FAILURE() << "label 3 accepted for 3 labels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ids.csv:1: label 3 is out of range"), std::string::npos) << e.what();
  }

  write("bad.csv", "path,label\nimg/0.png,1\nimg/1.png,1,extra\n");
  try {
    DataSource::open(path("bad.csv"), proc, 3);
    ADD_FAILURE() << "bad row accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:3: expected 2 fields"), std::string::npos) << e.what();
  }
  write("quote.csv", "\"img/0.png,1\n");
  EXPECT_THROW(DataSource::open(path("quote.csv"), proc, 3), Error);
  write("empty.csv", "path,label\n");
  EXPECT_THROW(DataSource::open(path("empty.csv"), proc, 3), Error);
}

// ---- safetensors -----------------------------------------------------------------

TEST_F(TrainData, SafetensorsUsedAsTheyAre) {
  Tensor px({4, 1, 3, 2});
  for (int64_t i = 0; i < px.numel(); ++i) px[i] = 0.25f * static_cast<float>(i) - 3.0f;
  io::SafetensorsWriter w;
  w.add("pixel_values", px);
  w.add_i64("labels", {4}, {1, 0, -100, 2});
  w.save(path("ids.safetensors"));
  const ConvNextImageProcessor proc = grey_processor();
  const auto src = DataSource::open(path("ids.safetensors"), proc, 1, 3);
  ASSERT_EQ(src->size(), 4);
  EXPECT_FALSE(src->float_labels());
  std::mt19937_64 rng(0);
  const train::Example ex = src->get(1, Augment{}, rng);  // augmentation is ignored for tensors
  EXPECT_EQ(ex.label, 0);
  ASSERT_EQ(ex.pixels.shape(), (Shape{1, 3, 2}));
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(ex.pixels[i], px[6 + i]);

  try {
    DataSource::open(path("ids.safetensors"), proc, 3);
    ADD_FAILURE() << "channel mismatch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ids.safetensors: pixel_values has 1 channels but the model takes 3"),
              std::string::npos) << e.what();
  }
  try {
    DataSource::open(path("ids.safetensors"), proc, 1, 2);
    ADD_FAILURE() << "label 2 accepted for 2 labels";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 2 is out of range"), std::string::npos) << e.what();
  }

  // Float labels [N, L]: multi-label targets, batched as [B, L].
  Tensor targets({4, 3});
  for (int64_t i = 0; i < 12; ++i) targets[i] = static_cast<float>(i % 2);
  save_tensors(path("multi.safetensors"), {{"pixel_values", px}, {"labels", targets}});
  const auto multi = DataSource::open(path("multi.safetensors"), proc, 1, 3);
  EXPECT_TRUE(multi->float_labels());
  EXPECT_EQ(multi->get(2, Augment{}, rng).target, (std::vector<float>{0, 1, 0}));
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  Loader loader(*multi, o, 0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_TRUE(same(b.pixel_values, px));
  ASSERT_FALSE(b.labels.is_integer());
  EXPECT_TRUE(same(b.labels.values, targets));
  EXPECT_FALSE(loader.next(b));
  EXPECT_THROW(DataSource::open(path("multi.safetensors"), proc, 1, 5), Error);  // 3 columns for 5 labels

  save_tensors(path("nolabels.safetensors"), {{"pixel_values", px}});
  EXPECT_THROW(DataSource::open(path("nolabels.safetensors"), proc, 1), Error);
}

// ---- the loader ------------------------------------------------------------------

TEST_F(TrainData, UnreadableImagesAreSkippedAndCounted) {
  write_png("data/a/0.png", 4, 4, 1);
  write_png("data/a/1.png", 4, 4, 2);
  write("data/b/2.png", "this is not a png");
  write_png("data/b/3.png", 4, 4, 3);
  const auto src = DataSource::open(path("data"), rgb_processor(true, 4), 3);
  ASSERT_EQ(src->size(), 4);
  std::mt19937_64 rng(0);
  EXPECT_THROW(src->get(2, no_augment(), rng), train::UnreadableImage);

  for (int64_t batch_size : {4, 1}) {
    SCOPED_TRACE(batch_size);
    LoaderOptions o;
    o.batch_size = batch_size;
    o.shuffle = false;
    o.augment.enabled = false;
    Loader loader(*src, o, 0);
    ::testing::internal::CaptureStderr();
    std::vector<int64_t> seen;
    int64_t skipped = 0;
    Batch b;
    while (loader.next(b)) {
      seen.insert(seen.end(), b.indices.begin(), b.indices.end());
      skipped += b.skipped;
      EXPECT_EQ(b.pixel_values.dim(0), static_cast<int64_t>(b.indices.size()));
      EXPECT_EQ(b.labels.class_ids.size(), b.indices.size());
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 3}));
    EXPECT_EQ(loader.skipped_total(), 1);
    EXPECT_EQ(skipped, batch_size == 4 ? 1 : 0);  // a batch of nothing is not delivered
    EXPECT_EQ(err.rfind("warning: skipping " + path("data/b/2.png") + ": ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

// Every batch of an epoch: indices, pixels and labels.
std::vector<Batch> epoch_batches(const DataSource& src, LoaderOptions o, int64_t epoch, int64_t start = 0) {
  Loader loader(src, o, epoch, start);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

TEST_F(TrainData, LoaderIsReproducibleWhateverTheWorkers) {
  const int64_t n = 10;
  std::vector<uint8_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % 3));
  write("idx/train-images-idx3-ubyte", idx_images(n, 9, 7, pattern(n * 63, 8)));
  write("idx/train-labels-idx1-ubyte", idx_labels(labels));
  const auto src = DataSource::open(path("idx"), grey_processor(), 1, 3);
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 42;
  o.workers = 1;
  const std::vector<Batch> ref = epoch_batches(*src, o, 0);
  ASSERT_EQ(ref.size(), 4u);
  EXPECT_EQ(ref.back().indices.size(), 1u);
  std::vector<int64_t> all;
  for (const Batch& b : ref) {
    EXPECT_EQ(b.pixel_values.shape(), (Shape{static_cast<int64_t>(b.indices.size()), 1, 9, 7}));
    for (size_t k = 0; k < b.indices.size(); ++k) EXPECT_EQ(b.labels.class_ids[k], b.indices[k] % 3);
    all.insert(all.end(), b.indices.begin(), b.indices.end());
  }
  std::vector<int64_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  std::vector<int64_t> identity(static_cast<size_t>(n));
  std::iota(identity.begin(), identity.end(), int64_t{0});
  EXPECT_NE(all, identity);  // shuffled

  for (int workers : {0, 3}) {
    for (int prefetch : {1, 4}) {
      SCOPED_TRACE(::testing::Message() << workers << " workers, prefetch " << prefetch);
      o.workers = workers;
      o.prefetch = prefetch;
      const std::vector<Batch> again = epoch_batches(*src, o, 0);
      ASSERT_EQ(again.size(), ref.size());
      for (size_t b = 0; b < ref.size(); ++b) {
        EXPECT_EQ(again[b].indices, ref[b].indices);
        EXPECT_TRUE(same(again[b].pixel_values, ref[b].pixel_values));
        EXPECT_EQ(again[b].labels.class_ids, ref[b].labels.class_ids);
      }
    }
  }
  // Resuming at batch 2 gives the epoch's batches 2 and 3.
  const std::vector<Batch> resumed = epoch_batches(*src, o, 0, 2);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed[0].indices, ref[2].indices);
  EXPECT_TRUE(same(resumed[1].pixel_values, ref[3].pixel_values));
  EXPECT_TRUE(epoch_batches(*src, o, 0, 9).empty());

  o.drop_last = true;
  EXPECT_EQ(Loader(*src, o, 0).batches(), 3);
  EXPECT_EQ(epoch_batches(*src, o, 0).size(), 3u);
  o.drop_last = false;
  EXPECT_EQ(Loader(*src, o, 0).batches(), 4);

  // Another seed or another epoch: another order.
  auto order = [&](uint64_t seed, int64_t epoch) {
    LoaderOptions p = o;
    p.seed = seed;
    std::vector<int64_t> idx;
    for (const Batch& b : epoch_batches(*src, p, epoch)) idx.insert(idx.end(), b.indices.begin(), b.indices.end());
    return idx;
  };
  EXPECT_EQ(order(42, 0), all);
  EXPECT_NE(order(43, 0), all);
  EXPECT_NE(order(42, 1), all);
  o.shuffle = false;
  EXPECT_EQ(epoch_batches(*src, o, 5)[0].indices, (std::vector<int64_t>{0, 1, 2}));

  // A loader dropped half-way stops its workers.
  o.workers = 3;
  {
    Loader loader(*src, o, 0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
  }
}

// A source whose example 4 fails with an error that is not an unreadable image.
class FailingSource : public DataSource {
 public:
  int64_t size() const override { return 6; }
  std::vector<std::string> class_names() const override { return {}; }
  std::string origin() const override { return "failing"; }
  train::Example get(int64_t i, const Augment&, std::mt19937_64&) const override {
    if (i == 4) throw Error("failing: example 4 is broken");
    train::Example ex;
    ex.pixels = Tensor({1, 2, 2});
    ex.label = i;
    return ex;
  }
};

TEST_F(TrainData, OtherErrorsPropagate) {
  const FailingSource src;
  for (int workers : {0, 2}) {
    LoaderOptions o;
    o.batch_size = 2;
    o.shuffle = false;
    o.workers = workers;
    Loader loader(src, o, 0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    ASSERT_TRUE(loader.next(b));
    EXPECT_EQ(b.labels.class_ids, (std::vector<int64_t>{2, 3}));
    EXPECT_THROW(loader.next(b), Error);
  }
  // Images that come out of the processor in different sizes cannot be batched.
  write_png("data/a/0.png", 4, 4, 1);
  write_png("data/a/1.png", 5, 4, 2);
  const auto mixed = DataSource::open(path("data"), rgb_processor(false, 384), 3);
  LoaderOptions o;
  o.batch_size = 2;
  o.augment.enabled = false;
  Loader loader(*mixed, o, 0);
  Batch b;
  EXPECT_THROW(loader.next(b), Error);
}

// Records the threads that prepare its examples. Each call to get() waits (up to 10 s) until
// `meet` calls have been inside at once, so a loader with that many workers shows every one.
class ThreadRecordingSource : public DataSource {
 public:
  ThreadRecordingSource(int64_t n, int meet) : n_(n), meet_(meet) {}
  int64_t size() const override { return n_; }
  std::vector<std::string> class_names() const override { return {}; }
  std::string origin() const override { return "recording"; }
  train::Example get(int64_t i, const Augment&, std::mt19937_64&) const override {
    std::unique_lock<std::mutex> lk(mu_);
    threads_.insert(std::this_thread::get_id());
    most_inside_ = std::max(most_inside_, ++inside_);
    cv_.notify_all();
    cv_.wait_for(lk, std::chrono::seconds(10), [&] { return most_inside_ >= meet_; });
    --inside_;
    train::Example ex;
    ex.pixels = Tensor({1, 2, 2});
    ex.label = i % 2;
    return ex;
  }
  std::set<std::thread::id> threads() const {
    std::lock_guard<std::mutex> lk(mu_);
    return threads_;
  }
  int most_inside() const {
    std::lock_guard<std::mutex> lk(mu_);
    return most_inside_;
  }

 private:
  const int64_t n_;
  const int meet_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::set<std::thread::id> threads_;
  mutable int inside_ = 0, most_inside_ = 0;
};

// LoaderOptions::workers is the number of threads that read examples (0: the caller's own).
TEST_F(TrainData, LoaderReadsWithTheWorkersItIsGiven) {
  for (int workers : {0, 1, 3}) {
    SCOPED_TRACE(workers);
    const ThreadRecordingSource src(12, std::max(1, workers));
    LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    Loader loader(src, o, 0);
    Batch b;
    int64_t seen = 0;
    while (loader.next(b)) seen += b.pixel_values.dim(0);
    EXPECT_EQ(seen, 12);
    const std::set<std::thread::id> threads = src.threads();
    if (workers == 0) {
      EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
    } else {
      EXPECT_EQ(threads.size(), static_cast<size_t>(workers));
      EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
    }
    EXPECT_EQ(src.most_inside(), std::max(1, workers));
  }
  const ThreadRecordingSource src(4, 1);
  for (int workers : {-1, 1025}) {
    LoaderOptions o;
    o.workers = workers;
    EXPECT_THROW(Loader(src, o, 0), Error) << workers;
  }
}

// Evaluation reads its batches with the same loader: in order, unaugmented, with EvalOptions'
// batch size and workers.
TEST(TrainEval, LoaderOptionsComeFromEvalOptions) {
  EvalOptions eo;
  eo.batch_size = 5;
  eo.workers = 3;
  const LoaderOptions lo = train::eval_loader_options(eo);
  EXPECT_EQ(lo.batch_size, 5);
  EXPECT_EQ(lo.workers, 3);
  EXPECT_FALSE(lo.shuffle);
  EXPECT_FALSE(lo.augment.enabled);
  EXPECT_EQ(train::eval_loader_options(EvalOptions{}).workers, 2);
}

// ---- augmentation ----------------------------------------------------------------

TEST_F(TrainData, RandomResizedCropSizesAndBoxes) {
  std::mt19937_64 rng(7);
  const Augment a;
  for (int i = 0; i < 200; ++i) {
    const train::CropBox b = train::random_resized_crop_box(50, 30, a, rng);
    ASSERT_TRUE(b.width >= 1 && b.height >= 1 && b.left >= 0 && b.top >= 0 && b.left + b.width <= 50 &&
                b.top + b.height <= 30);
    ASSERT_LE(b.width * b.height, 50 * 30);
  }
  // No draw can fit a 20×20 square in a 40×10 image: the fallback is the centred 10×10.
  Augment square;
  square.scale_min = square.scale_max = 1.0;
  square.ratio_min = square.ratio_max = 1.0;
  const train::CropBox f = train::random_resized_crop_box(40, 10, square, rng);
  EXPECT_EQ(f.top, 0);
  EXPECT_EQ(f.left, 15);
  EXPECT_EQ(f.width, 10);
  EXPECT_EQ(f.height, 10);
  Augment bad;
  bad.ratio_min = 2.0;
  bad.ratio_max = 1.0;
  EXPECT_THROW(train::random_resized_crop_box(4, 4, bad, rng), Error);

  // Output sizes: the processor's own for this image.
  const ImageU8 img = image_u8(50, 40, 3, pattern(50 * 40 * 3, 9));
  EXPECT_EQ(train::preprocess_example(img, rgb_processor(true, 32), a, rng).shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(train::preprocess_example(img, rgb_processor(true, 384), a, rng).shape(), (Shape{3, 384, 384}));
  EXPECT_EQ(train::preprocess_example(img, rgb_processor(false, 384), a, rng).shape(), (Shape{3, 40, 50}));
  const ImageU8 grey = image_u8(28, 28, 1, pattern(28 * 28, 10));
  EXPECT_EQ(train::preprocess_example(grey, grey_processor(), a, rng).shape(), (Shape{1, 28, 28}));
  // Disabled: exactly the processor.
  const ConvNextImageProcessor p32 = rgb_processor(true, 32);
  EXPECT_TRUE(same(train::preprocess_example(img, p32, no_augment(), rng), p32.preprocess(img)));
}

// The mirror image of a [C, H, W] tensor.
Tensor mirrored(const Tensor& t) {
  Tensor m(t.shape());
  const int64_t rows = t.dim(0) * t.dim(1), W = t.dim(2);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < W; ++x) m[r * W + x] = t[r * W + (W - 1 - x)];
  return m;
}

TEST_F(TrainData, IdentityCropEqualsTheProcessorAndFlipMirrors) {
  Augment identity;
  identity.scale_min = identity.scale_max = 1.0;
  identity.ratio_min = identity.ratio_max = 1.0;
  identity.hflip = false;
  // No resize (28×28 grey, as Fashion-MNIST), and the ≥ 384 warp with a bilinear processor:
  // the whole-image crop resized by BILINEAR is then what the processor itself does.
  const ImageU8 grey = image_u8(28, 28, 1, pattern(28 * 28, 11));
  const ImageU8 rgb = image_u8(16, 16, 3, pattern(16 * 16 * 3, 12));
  const ConvNextImageProcessor warp = rgb_processor(true, 384, /*resample=*/2);
  const std::vector<std::pair<const ImageU8*, ConvNextImageProcessor>> cases = {{&grey, grey_processor()},
                                                                                {&rgb, warp}};
  for (const auto& [img, proc] : cases) {
    const Tensor plain = proc.preprocess(*img);
    for (uint64_t seed = 0; seed < 3; ++seed) {
      std::mt19937_64 rng(seed);
      EXPECT_TRUE(same(train::preprocess_example(*img, proc, identity, rng), plain));
    }
    // With flips: every output is the image or its exact mirror, and both happen.
    Augment flip = identity;
    flip.hflip = true;
    const Tensor mirror = mirrored(plain);
    int flipped = 0, kept = 0;
    for (uint64_t seed = 0; seed < 16; ++seed) {
      std::mt19937_64 rng(seed);
      const Tensor out = train::preprocess_example(*img, proc, flip, rng);
      if (same(out, plain)) {
        ++kept;
      } else {
        EXPECT_TRUE(same(out, mirror)) << "seed " << seed;
        ++flipped;
      }
    }
    EXPECT_GT(flipped, 0);
    EXPECT_GT(kept, 0);
  }
}

TEST_F(TrainData, AugmentedExamplesDependOnlyOnTheirSeed) {
  write_png("data/a/0.png", 12, 9, 1);
  const auto src = DataSource::open(path("data"), rgb_processor(true, 8), 3);
  const Augment a;
  std::mt19937_64 r1(train::sampling::example_seed(1, 0, 0)), r2(train::sampling::example_seed(1, 0, 0)),
      r3(train::sampling::example_seed(1, 1, 0));
  const Tensor x1 = src->get(0, a, r1).pixels, x2 = src->get(0, a, r2).pixels, x3 = src->get(0, a, r3).pixels;
  EXPECT_TRUE(same(x1, x2));
  EXPECT_FALSE(same(x1, x3));
  EXPECT_EQ(x1.shape(), (Shape{3, 8, 8}));
}

}  // namespace
}  // namespace convnext::test
