// Bad input is a feature: every broken file or tensor gives one clear Error naming the file and
// the problem, and nothing crashes or reads out of bounds (this suite also runs under ASan/UBSan).
#include <cmath>
#include <fstream>
#include <random>

#include "convnext/convnext.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

class BadInput : public TempDirTest {
 protected:
  // A safetensors file from a raw JSON header and a data section.
  void write_st(const std::string& name, const std::string& header, const std::string& data) const {
    std::string len(8, '\0');
    for (int i = 0; i < 8; ++i) len[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write(name, len + header + data);
  }
  // A small valid model directory (random weights, test_util.h's small_config) to break in various ways.
  std::string make_model(const std::string& name) const {
    ConvNextForImageClassification(small_config(), 1).save_pretrained(path(name));
    return path(name);
  }
};

// The Error's message, or "" when nothing was thrown.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(expr, ...)                                                              \
  do {                                                                                       \
    const std::string msg = error_of([&] { (void)(expr); });                                 \
    ASSERT_FALSE(msg.empty()) << #expr " did not fail";                                      \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg; \
  } while (0)

TEST_F(BadInput, WrongChannelCountGivesTransformersMessage) {
  auto m = ConvNextForImageClassification::from_pretrained(make_model("m"));
  EXPECT_ERROR(m.forward(Tensor({1, 1, 32, 32})),
               "Make sure that the channel dimension of the pixel values match with the one set in the configuration");
}

TEST_F(BadInput, InputSmallerThanTheStrideChain) {
  auto m = ConvNextForImageClassification::from_pretrained(make_model("m"));
  EXPECT_ERROR(m.forward(Tensor({1, 3, 7, 64})), "too small", "at least 8x8");
  EXPECT_ERROR(m.forward(Tensor({1, 3, 64})), "4 dimensions");
}

TEST_F(BadInput, NanInTheInputIsComputedNotHidden) {
  auto m = ConvNextForImageClassification::from_pretrained(make_model("m"));
  Tensor x({2, 3, 16, 16});
  x[5] = std::nanf("");  // only the first image
  const Labels labels = Labels::classes({0, 1});
  auto out = m.forward(x, &labels);
  EXPECT_TRUE(std::isnan(out.logits[0]));
  EXPECT_FALSE(std::isnan(out.logits[3]));  // the second image is untouched
  EXPECT_TRUE(std::isnan(*out.loss));
}

TEST_F(BadInput, MissingOrCorruptConfig) {
  const std::string d = make_model("m");
  fs::remove(d + "/config.json");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "config.json", "cannot open");
  write("m/config.json", "{\"hidden_sizes\": [8, 16");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "config.json", "not valid JSON");
  write("m/config.json", "{\"hidden_sizes\": \"wide\"}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "config.json", "hidden_sizes");
  write("m/config.json", "{\"hidden_act\": \"swiglu\"}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "unsupported hidden_act 'swiglu'");
  write("m/config.json", "{\"out_features\": [\"stage9\"]}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "stage9");
  write("m/config.json", "{\"model_type\": \"resnet\"}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "model_type");
  write("m/config.json", "{\"depths\": [1000000000, 1], \"hidden_sizes\": [8, 16], \"num_stages\": 2}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "depths");
  write("m/config.json", "{\"hidden_sizes\": [8, 16], \"depths\": [1, 1, 1, 1]}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "hidden_sizes has 2 entries but num_stages is 4");
  write("m/config.json", "{\"patch_size\": 1e999999}");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "config.json", "not valid JSON");
  write("m/config.json", "[1, 2]");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "JSON object");
}

TEST_F(BadInput, TruncatedSafetensors) {
  const std::string d = make_model("m");
  const auto size = fs::file_size(d + "/model.safetensors");
  fs::resize_file(d + "/model.safetensors", size - 10);
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "model.safetensors", "past the end");
  fs::resize_file(d + "/model.safetensors", 100);
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "model.safetensors", "header length");
  fs::resize_file(d + "/model.safetensors", 3);
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "model.safetensors", "not a safetensors file");
  fs::resize_file(d + "/model.safetensors", 0);
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(d), "model.safetensors");
}

TEST_F(BadInput, HostileSafetensorsHeaders) {
  const std::string data(16, '\0');
  write_st("overlap.safetensors",
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("overlap.safetensors")), "overlap.safetensors", "overlap");
  write_st("past.safetensors", R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("past.safetensors")), "past the end");
  write_st("size.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("size.safetensors")), "tensor 'a'", "expected 12");
  write_st("huge.safetensors", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("huge.safetensors")), "too large");
  write_st("neg.safetensors", R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("neg.safetensors")), "non-negative");
  write_st("rev.safetensors", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("rev.safetensors")), "end before");
  write_st("dtype.safetensors", R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("dtype.safetensors")), "unknown dtype 'Q4'");
  write_st("json.safetensors", "{\"a\": [", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("json.safetensors")), "not valid JSON");
  write_st("gap.safetensors", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("gap.safetensors")), "after the last tensor");
  // Found by fuzz_safetensors: a number too large for any integer type is a JSON error too.
  write_st("overflow.safetensors", R"({"a":{"dtype":"F32","shape":[666600000000000000080920.5e0000080920],"data_offsets":[0,16]}})", data);
  EXPECT_ERROR(io::SafetensorsFile::open(path("overflow.safetensors")), "overflow.safetensors", "not valid JSON");
  write_st("fields.safetensors", R"({"a":{"dtype":"F32"}})", "");
  EXPECT_ERROR(io::SafetensorsFile::open(path("fields.safetensors")), "needs dtype, shape and data_offsets");
  EXPECT_ERROR(io::SafetensorsFile::open(path("nothing-here.safetensors")), "nothing-here.safetensors", "cannot open");
}

TEST_F(BadInput, MutatedCheckpointsNeverCrash) {
  // A small fuzz loop: flip bytes of a valid model.safetensors (header and data) and load it.
  // Every outcome must be a model or an Error; ASan/UBSan runs make this a memory-safety check.
  const std::string d = make_model("m");
  std::ifstream in(d + "/model.safetensors", std::ios::binary);
  const std::string orig((std::istreambuf_iterator<char>(in)), {});
  std::mt19937 rng(1234);
  int loaded = 0, refused = 0;
  for (int it = 0; it < 300; ++it) {
    std::string bytes = orig;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly in the header, where the structure is.
      const size_t limit = (rng() % 4) ? std::min<size_t>(bytes.size(), 2048) : bytes.size();
      bytes[rng() % limit] = static_cast<char>(rng());
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
    write("m/model.safetensors", bytes);
    try {
      auto m = ConvNextForImageClassification::from_pretrained(d);
      (void)m.forward(Tensor({1, 3, 8, 8}));
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 300);
  EXPECT_GT(refused, 0);
}

TEST_F(BadInput, WeightOfTheWrongShapeOrDtypeOrMissingOrUnexpected) {
  const std::string d = make_model("m");
  auto f = io::SafetensorsFile::open(d + "/model.safetensors");
  auto rewrite = [&](const std::function<void(io::SafetensorsWriter&, const io::TensorInfo&)>& edit) {
    io::SafetensorsWriter w;
    for (const auto& t : f->tensors()) edit(w, t);
    w.save(path("m2/model.safetensors"));
  };
  fs::create_directories(path("m2"));
  fs::copy_file(d + "/config.json", path("m2/config.json"));

  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    w.add(t.name, t.name == "classifier.weight" ? Tensor({5, 16}) : f->get_f32(t.name));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), "classifier.weight", "[5,16]", "[3,16]");
  // ignore_mismatched_sizes gives a fresh head instead.
  LoadOptions o;
  o.ignore_mismatched_sizes = true;
  auto m = ConvNextForImageClassification::from_pretrained(path("m2"), o);
  EXPECT_EQ(m.load_warnings().size(), 1u);

  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    if (t.name == "convnext.embeddings.layernorm.bias") w.add_i64(t.name, t.shape, std::vector<int64_t>(8, 1));
    else w.add(t.name, f->get_f32(t.name));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), "convnext.embeddings.layernorm.bias", "I64");

  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    if (t.name != "convnext.encoder.stages.1.layers.0.pwconv2.bias") w.add(t.name, f->get_f32(t.name));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), "missing tensor",
               "convnext.encoder.stages.1.layers.0.pwconv2.bias", "[16]");

  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    w.add(t.name, f->get_f32(t.name));
    if (t.name == "classifier.bias") w.add("convnext.encoder.stages.5.layers.0.gamma", Tensor({4}));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), "unexpected tensor",
               "convnext.encoder.stages.5.layers.0.gamma");
}

// ConvNeXt V2: a GRN tensor of the wrong shape, a missing one, and GRN in a V1 checkpoint are one
// line each, naming the file and the key.
TEST_F(BadInput, V2GrnOfTheWrongShapeOrMissing) {
  ConvNextConfig c = small_config();
  c.model_type = "convnextv2";
  ConvNextForImageClassification(c, 1).save_pretrained(path("v2"));
  auto f = io::SafetensorsFile::open(path("v2/model.safetensors"));
  const std::string grn = "convnextv2.encoder.stages.0.layers.0.grn.weight";
  ASSERT_TRUE(f->contains(grn));
  auto rewrite = [&](const std::function<void(io::SafetensorsWriter&, const io::TensorInfo&)>& edit) {
    io::SafetensorsWriter w;
    for (const auto& t : f->tensors()) edit(w, t);
    w.save(path("m2/model.safetensors"));
  };
  fs::create_directories(path("m2"));
  fs::copy_file(path("v2/config.json"), path("m2/config.json"));
  const std::string m2 = path("m2");  // the error names what was passed
  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) { w.add(t.name, t.name == grn ? Tensor({32}) : f->get_f32(t.name)); });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), m2.c_str(), grn.c_str(), "[32]", "[1,1,1,32]");
  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    if (t.name != grn) w.add(t.name, f->get_f32(t.name));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), m2.c_str(), "missing tensor", grn.c_str());
  // V2 weights under a V1 config.json (no layer scale): GRN is not a parameter of ConvNeXT V1.
  ConvNextConfig v1 = small_config();
  v1.layer_scale_init_value = 0;
  ConvNextForImageClassification(v1, 1).save_pretrained(path("v1"));
  fs::copy_file(path("v1/config.json"), path("m2/config.json"), fs::copy_options::overwrite_existing);
  rewrite([&](io::SafetensorsWriter& w, const io::TensorInfo& t) {
    w.add(t.name.starts_with("convnextv2.") ? "convnext." + t.name.substr(11) : t.name, f->get_f32(t.name));
  });
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("m2")), m2.c_str(), "unexpected tensor", ".grn.",
               "ConvNextForImageClassification");
}

TEST_F(BadInput, ShardIndexCannotPointOutsideTheCheckpoint) {
  fs::create_directories(path("s"));
  small_config().save(path("s/config.json"));
  write("s/model.safetensors.index.json", R"({"weight_map": {"classifier.bias": "../../etc/passwd"}})");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("s")), "outside the checkpoint directory");
  write("s/model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("s")), "weight_map");
}

TEST_F(BadInput, NoWeightsInTheDirectory) {
  fs::create_directories(path("e"));
  small_config().save(path("e/config.json"));
  EXPECT_ERROR(ConvNextForImageClassification::from_pretrained(path("e")), "no model.safetensors");
}

TEST_F(BadInput, BadLabels) {
  auto m = ConvNextForImageClassification::from_pretrained(make_model("m"));
  const Tensor x({2, 3, 16, 16});
  const Labels out_of_range = Labels::classes({0, 7});
  EXPECT_ERROR(m.forward(x, &out_of_range), "label 7 is out of range for 3 classes");
  const Labels wrong_count = Labels::classes({0});
  EXPECT_ERROR(m.forward(x, &wrong_count), "labels has 1 entries for a batch of 2");
}

}  // namespace
}  // namespace convnext::test
