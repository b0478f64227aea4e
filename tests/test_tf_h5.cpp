// tf_model.h5 (TF / Keras HDF5 weights, as TFConvNextForImageClassification.save_pretrained
// writes them): tests/make_tf_h5.py rewrites the tiny4 fixture in that layout; the logits must
// match transformers' and every tensor the safetensors copy. Other models' h5 files and broken
// files give one clear line.
#include <sys/wait.h>

#include <cmath>
#include <fstream>

#include "convnext/convnext.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/tf_h5.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

class TfH5 : public TempDirTest {
 protected:

  // Writes dir_/tf_model.h5 (+ tiny4's config.json) from tiny4; false (and a skip) without h5py.
  bool make(const std::string& variant) {
    fs::copy_file(fixture("tiny4/config.json"), dir_ / "config.json", fs::copy_options::overwrite_existing);
    const std::string cmd = "/usr/bin/python3 " CONVNEXT_SOURCE_DIR "/tests/make_tf_h5.py " + fixture("tiny4/model.safetensors") +
                            " " + path("tf_model.h5") + " --variant " + variant;
    const int rc = std::system(cmd.c_str());
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
      skip_ = "python3-h5py / python3-numpy are not installed (tests/make_tf_h5.py)";
      return false;
    }
    if (!(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) || !fs::exists(path("tf_model.h5"))) {
      skip_ = "/usr/bin/python3 could not run tests/make_tf_h5.py";
      return false;
    }
    return true;
  }
  std::string open_error(const std::string& p) {
    try {
      io::Checkpoint::open(p);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string skip_;
};

#define MAKE_OR_SKIP(variant)              \
  do {                                     \
    REQUIRE_FIXTURES();                    \
    if (!build_info().hdf5) GTEST_SKIP() << "built without HDF5 (-DCONVNEXT_WITH_HDF5=OFF or no libhdf5-dev)"; \
    if (!make(variant)) GTEST_SKIP() << skip_; \
  } while (0)

// Every tensor of `c` equals the safetensors copy within `rel` (0: bit for bit).
void expect_same_tensors(const io::Checkpoint& c, const io::SafetensorsFile& ref, double rel, const std::string& prefix = "") {
  size_t n = 0;
  for (const io::TensorInfo& t : ref.tensors()) {
    if (!t.name.starts_with(prefix)) continue;
    const std::string name = t.name.substr(prefix.size());
    ++n;
    ASSERT_TRUE(c.contains(name)) << name;
    const Tensor a = c.get(name), b = ref.get_f32(t.name);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    for (int64_t i = 0; i < a.numel(); ++i)
      ASSERT_LE(std::fabs(a[i] - b[i]), rel * std::fabs(b[i]) + (rel > 0 ? 3e-8 : 0.0)) << name << " element " << i;
  }
  EXPECT_EQ(c.names().size(), n);
}

TEST_F(TfH5, KerasNameMapping) {
  using io::TfH5File;
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/embeddings/patch_embeddings/kernel:0"),
            "convnext.embeddings.patch_embeddings.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/embeddings/layernorm/gamma:0"),
            "convnext.embeddings.layernorm.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/encoder/stages.0/layers.0/dwconv/kernel:0"),
            "convnext.encoder.stages.0.layers.0.dwconv.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification_1/convnext/encoder/stages.0/layers.0/dwconv/depthwise_kernel:0"),
            "convnext.encoder.stages.0.layers.0.dwconv.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_model/convnext/encoder/stages.3/layers.2/layer_scale_parameter:0"),
            "convnext.encoder.stages.3.layers.2.layer_scale_parameter");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/encoder/stages.1/downsampling_layer.0/beta:0"),
            "convnext.encoder.stages.1.downsampling_layer.0.bias");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/encoder/stages_._1/layers_._0/pwconv1/bias:0"),
            "convnext.encoder.stages.1.layers.0.pwconv1.bias");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/convnext/layernorm/gamma:0"), "convnext.layernorm.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_for_image_classification/classifier/kernel:0"), "classifier.weight");
  EXPECT_EQ(TfH5File::hf_name("tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0"), "");
  EXPECT_EQ(TfH5File::hf_name("tf_conv_next_v2_model/convnextv2/encoder/stages.0/layers.0/grn/weight:0"), "");
}

TEST_F(TfH5, Tiny4LogitsMatchTransformers) {
  MAKE_OR_SKIP("keras");
  auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  auto model = ConvNextForImageClassification::from_pretrained(dir_.string());
  EXPECT_EQ(model.weights_format(), "tf_model.h5 (Keras HDF5)");
  EXPECT_TRUE(close(model.forward(e->get_f32("pixel_values")).logits, e->get_f32("logits")));
  // Transposed back to the PyTorch layout, bit for bit.
  const io::Checkpoint c = io::Checkpoint::open(path("tf_model.h5"));
  EXPECT_EQ(c.format(), "tf_model.h5 (Keras HDF5)");
  EXPECT_EQ(c.dtype("classifier.weight"), "F32");
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("tiny4/model.safetensors")), 0.0);
}

TEST_F(TfH5, SafetensorsAndBinComeFirst) {
  MAKE_OR_SKIP("keras");
  fs::copy_file(fixture("tiny4/model.safetensors"), dir_ / "model.safetensors");
  EXPECT_EQ(io::Checkpoint::open(dir_.string()).format(), "safetensors");
  fs::remove(dir_ / "model.safetensors");
  EXPECT_EQ(io::Checkpoint::open(dir_.string()).format(), "tf_model.h5 (Keras HDF5)");
}

TEST_F(TfH5, VariableLengthChunkedAttributesFloat64AndDepthwiseKernels) {
  MAKE_OR_SKIP("alt");
  auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  auto model = ConvNextForImageClassification::from_pretrained(dir_.string());
  EXPECT_TRUE(close(model.forward(e->get_f32("pixel_values")).logits, e->get_f32("logits")));
  const io::Checkpoint c = io::Checkpoint::open(path("tf_model.h5"));
  EXPECT_EQ(c.dtype("convnext.encoder.stages.0.layers.0.dwconv.weight"), "F64");
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("tiny4/model.safetensors")), 0.0);
}

TEST_F(TfH5, Float16Datasets) {
  MAKE_OR_SKIP("f16");
  const io::Checkpoint c = io::Checkpoint::open(dir_.string());
  EXPECT_EQ(c.dtype("classifier.weight"), "F16");
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("tiny4/model.safetensors")), 4.9e-4);
  auto model = ConvNextForImageClassification::from_pretrained(dir_.string());
  EXPECT_EQ(model.forward(io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"))->get_f32("pixel_values")).logits.dim(1), 5);
}

TEST_F(TfH5, BaseModelNamesHaveNoPrefix) {
  MAKE_OR_SKIP("base");
  const io::Checkpoint c = io::Checkpoint::open(dir_.string());
  EXPECT_TRUE(c.contains("embeddings.patch_embeddings.weight"));
  EXPECT_FALSE(c.contains("classifier.weight"));
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("tiny4/model.safetensors")), 0.0, "convnext.");
}

TEST_F(TfH5, OtherModelsNameIsAClearError) {
  MAKE_OR_SKIP("wrong");
  const std::string err = open_error(dir_.string());
  EXPECT_NE(err.find("tf_model.h5: dataset 'convnext/tf_conv_next_for_image_classification/bert/encoder/layer_._0/attention/self/query/kernel:0' is not a ConvNeXT weight"),
            std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

TEST_F(TfH5, NotAKerasFileIsAClearError) {
  MAKE_OR_SKIP("plain");
  EXPECT_EQ(open_error(path("tf_model.h5")),
            path("tf_model.h5") + ": no 'layer_names' attribute: not a Keras weights file (tf_model.h5)");
}

TEST_F(TfH5, TruncatedAndBrokenFilesAreClearErrors) {
  MAKE_OR_SKIP("keras");
  std::ifstream in(path("tf_model.h5"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 4096u);
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t(2048), size_t(100), size_t(8), size_t(0)}) {
    std::ofstream(path("cut.h5"), std::ios::binary) << bytes.substr(0, keep);
    const std::string err = open_error(path("cut.h5"));
    EXPECT_TRUE(err.starts_with(path("cut.h5") + ": ")) << keep << ": " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
  // A file named on its own is first judged by its first bytes (io/file_kind.h).
  std::ofstream(path("text.h5")) << "not hdf5 at all\n";
  EXPECT_EQ(open_error(path("text.h5")), path("text.h5") + ": a text file, not a model checkpoint");
}

// Built without HDF5, a tf_model.h5 is one line saying how to enable it (from the API and the CLI).
TEST_F(TfH5, WithoutHdf5TheErrorSaysHowToEnableIt) {
  if (build_info().hdf5) GTEST_SKIP() << "built with HDF5";
  std::ofstream(path("tf_model.h5")) << "whatever";
  const std::string m = open_error(path("tf_model.h5"));
  EXPECT_NE(m.find("tf_model.h5 needs HDF5 support: rebuild with libhdf5-dev installed and -DCONVNEXT_WITH_HDF5=ON"),
            std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

}  // namespace
}  // namespace convnext::test
