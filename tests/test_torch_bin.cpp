// pytorch_model.bin (torch.save zip + pickle) and its sharded index: the fixtures' logits, exact
// values against PyTorch for strided/offset/fp16/bf16 tensors, and hostile files refused with one
// clear line (nothing from the file is ever executed).
#include <zlib.h>

#include <fstream>
#include <sstream>

#include "convnext/convnext.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

std::string u16(uint32_t v) { return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }
std::string u32(uint32_t v) { return u16(v & 0xffff) + u16(v >> 16); }
std::string bu(const std::string& s) { return "X" + u32(static_cast<uint32_t>(s.size())) + s; }  // BINUNICODE
std::string k1(int v) { return "K" + std::string(1, static_cast<char>(v)); }                      // BININT1

// A zip of stored (or deflated) entries; `bad_crc` corrupts the CRC of every entry.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files, bool compress = false, bool bad_crc = false) {
  std::string out, cd;
  for (const auto& [name, raw] : files) {
    uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uInt>(raw.size())));
    if (bad_crc) crc ^= 1;
    std::string data = raw;
    if (compress) {
      z_stream s{};
      deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
      data.resize(deflateBound(&s, raw.size()));
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
      s.avail_in = static_cast<uInt>(raw.size());
      s.next_out = reinterpret_cast<Bytef*>(data.data());
      s.avail_out = static_cast<uInt>(data.size());
      deflate(&s, Z_FINISH);
      data.resize(s.total_out);
      deflateEnd(&s);
    }
    const std::string common = u16(20) + u16(0) + u16(compress ? 8 : 0) + u16(0) + u16(0) + u32(crc) +
                               u32(static_cast<uint32_t>(data.size())) + u32(static_cast<uint32_t>(raw.size())) +
                               u16(static_cast<uint16_t>(name.size())) + u16(0);
    cd += u32(0x02014b50) + u16(20) + common + u16(0) + u16(0) + u16(0) + u32(0) + u32(static_cast<uint32_t>(out.size())) + name;
    out += u32(0x04034b50) + common + name + data;
  }
  const uint32_t cd_off = static_cast<uint32_t>(out.size());
  out += cd + u32(0x06054b50) + u16(0) + u16(0) + u16(static_cast<uint16_t>(files.size())) +
         u16(static_cast<uint16_t>(files.size())) + u32(static_cast<uint32_t>(cd.size())) + u32(cd_off) + u16(0);
  return out;
}

// The pickle of {name: tensor(size, stride, offset) on a FloatStorage of `numel` elements, key "0"}.
std::string tensor_pickle(const std::string& name, int numel, std::vector<int> size, std::vector<int> stride, int offset) {
  std::string p = "\x80\x02}" + bu(name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + bu("storage") +
                  "ctorch\nFloatStorage\n" + bu("0") + bu("cpu") + k1(numel) + "tQ" + k1(offset) + "(";
  for (int s : size) p += k1(s);
  p += "t(";
  for (int s : stride) p += k1(s);
  p += "t\x89" "ccollections\nOrderedDict\n)RtRs.";
  return p;
}

std::string floats(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    float f = static_cast<float>(i) + 0.5f;
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

class TorchBin : public TempDirTest {
 protected:
  // Writes pytorch_model.bin from a pickle and storage "0"; returns the error of opening it ("" if none).
  std::string open_error(const std::string& pickle, const std::string& storage = floats(4), bool deflate = false, bool bad_crc = false) {
    write("pytorch_model.bin", make_zip({{"archive/data.pkl", pickle}, {"archive/data/0", storage}}, deflate, bad_crc));
    try {
      io::Checkpoint::open(path("pytorch_model.bin"));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

void expect_same_tensors(const io::Checkpoint& c, const io::SafetensorsFile& ref) {
  ASSERT_EQ(c.names().size(), ref.tensors().size());
  for (const io::TensorInfo& t : ref.tensors()) {
    ASSERT_TRUE(c.contains(t.name)) << t.name;
    EXPECT_EQ(c.shape(t.name), t.shape) << t.name;
    const Tensor a = c.get(t.name), b = ref.get_f32(t.name);
    ASSERT_EQ(a.shape(), b.shape()) << t.name;
    for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << t.name << " element " << i;
  }
}

TEST_F(TorchBin, Tiny4LogitsMatchTransformers) {
  REQUIRE_FIXTURES();
  auto e = io::SafetensorsFile::open(fixture("tiny4/expected.safetensors"));
  auto model = ConvNextForImageClassification::from_pretrained(fixture("tiny4/bin"));
  EXPECT_EQ(model.weights_format(), "pytorch_model.bin (zip + restricted pickle)");
  EXPECT_TRUE(close(model.forward(e->get_f32("pixel_values")).logits, e->get_f32("logits")));
  // Every tensor equals the model.safetensors copy, bit for bit; F32 contiguous ones are borrowed.
  const io::Checkpoint c = io::Checkpoint::open(fixture("tiny4/bin"));
  EXPECT_EQ(c.dtype("classifier.weight"), "F32");
  EXPECT_TRUE(c.get("classifier.weight").borrowed());
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("tiny4/model.safetensors")));
}

// ConvNeXt V2's .bin copy (torch.save(model.state_dict()), "convnextv2." keys, GRN [1,1,1,4C]).
TEST_F(TorchBin, V2Tiny4LogitsMatchTransformers) {
  REQUIRE_FIXTURE("v2_tiny4/bin");
  auto e = io::SafetensorsFile::open(fixture("v2_tiny4/expected.safetensors"));
  auto model = ConvNextForImageClassification::from_pretrained(fixture("v2_tiny4/bin"));
  EXPECT_TRUE(model.config().is_v2());
  EXPECT_TRUE(close(model.forward(e->get_f32("pixel_values")).logits, e->get_f32("logits")));
  const io::Checkpoint c = io::Checkpoint::open(fixture("v2_tiny4/bin"));
  expect_same_tensors(c, *io::SafetensorsFile::open(fixture("v2_tiny4/model.safetensors")));
}

TEST_F(TorchBin, ShardedBinLogitsMatchTransformers) {
  REQUIRE_FIXTURES();
  auto e = io::SafetensorsFile::open(fixture("variants_tiny4/expected.safetensors"));
  auto model = ConvNextForImageClassification::from_pretrained(fixture("variants_tiny4/sharded_bin"));
  EXPECT_EQ(model.weights_format(), "pytorch_model.bin (zip + restricted pickle) (sharded, 11 files)");
  EXPECT_TRUE(close(model.forward(e->get_f32("pixel_values")).logits, e->get_f32("logits")));
}

TEST_F(TorchBin, StridedOffsetHalfBf16MatchPyTorchExactly) {
  const std::string cmd = "/usr/bin/python3 " CONVNEXT_SOURCE_DIR "/tests/torch_bin_ref.py " + dir_.string();
  const int rc = std::system(cmd.c_str());
  if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) GTEST_SKIP() << "python3-torch is not installed (tests/torch_bin_ref.py)";
  if (!fs::exists(path("pytorch_model.bin"))) GTEST_SKIP() << "/usr/bin/python3 could not run tests/torch_bin_ref.py";
  ASSERT_EQ(rc, 0);
  const io::Checkpoint c = io::Checkpoint::open(path("pytorch_model.bin"));
  EXPECT_EQ(c.dtype("half"), "F16");
  EXPECT_EQ(c.dtype("bf16_transposed"), "BF16");
  EXPECT_FALSE(c.get("transposed").borrowed());
  expect_same_tensors(c, *io::SafetensorsFile::open(path("reference.safetensors")));
}

TEST_F(TorchBin, ValidHandMadeFileStoredAndDeflated) {
  const std::string p = tensor_pickle("w", 4, {2, 2}, {1, 2}, 0);  // a transposed 2x2
  for (bool deflate : {false, true}) {
    ASSERT_EQ(open_error(p, floats(4), deflate), "");
    const io::Checkpoint c = io::Checkpoint::open(path("pytorch_model.bin"));
    const Tensor t = c.get("w");
    EXPECT_EQ(t.shape(), (Shape{2, 2}));
    EXPECT_EQ(std::vector<float>(t.data(), t.data() + 4), (std::vector<float>{0.5f, 2.5f, 1.5f, 3.5f}));
  }
}

TEST_F(TorchBin, RefusesOsSystem) {
  const std::string err = open_error("\x80\x02" "cposix\nsystem\n" + bu("touch " + path("pwned")) + "\x85R.");
  EXPECT_NE(err.find(path("pytorch_model.bin") + ": "), std::string::npos) << err;
  EXPECT_NE(err.find("posix.system"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(path("pwned")));
}

TEST_F(TorchBin, RefusesBuiltinsEval) {
  const std::string err = open_error("\x80\x02" "cbuiltins\neval\n" + bu("1+1") + "\x85R.");
  EXPECT_NE(err.find("builtins.eval"), std::string::npos) << err;
  const std::string err2 = open_error("\x80\x04" + bu("builtins") + bu("eval") + "\x93" + bu("1") + "\x85R.");
  EXPECT_NE(err2.find("builtins.eval"), std::string::npos) << err2;
}

TEST_F(TorchBin, RefusesReduceOnStorageTypeAndUnknownOpcodes) {
  EXPECT_NE(open_error("\x80\x02" "ctorch\nFloatStorage\n)R.").find("refused REDUCE on 'torch.FloatStorage'"), std::string::npos);
  const std::string err = open_error("\x80\x02}\xff.");
  EXPECT_NE(err.find("unknown or disallowed pickle opcode 0xff"), std::string::npos) << err;
  EXPECT_NE(open_error("\x80\x02(i__builtin__\nlist\n.").find("opcode 0x69"), std::string::npos);  // INST
}

TEST_F(TorchBin, RefusesMemoAndStackAbuse) {
  EXPECT_NE(open_error("\x80\x02h\x05.").find("memo index 5 out of range"), std::string::npos);
  EXPECT_NE(open_error("\x80\x02s.").find("stack underflow"), std::string::npos);
  EXPECT_NE(open_error("\x80\x02}").find("without STOP"), std::string::npos);
  std::string deep = "\x80\x02";  // 100 nested one-element tuples
  deep += "N";
  for (int i = 0; i < 100; ++i) deep += "\x85";
  EXPECT_NE(open_error(deep + ".").find("nested deeper"), std::string::npos);
  const std::string cycle("\x80\x02]q\x00h\x00h\x00" "a.", 11);  // a list appended to itself
  EXPECT_NE(open_error(cycle).find("inside itself"), std::string::npos);
}

TEST_F(TorchBin, RefusesTensorOutsideItsStorage) {
  const std::string err = open_error(tensor_pickle("w", 4, {10}, {1}, 0));
  EXPECT_NE(err.find("reaches outside its storage"), std::string::npos) << err;
  EXPECT_NE(open_error(tensor_pickle("w", 4, {2, 2}, {2, 1}, 1)).find("outside its storage"), std::string::npos);
  EXPECT_NE(open_error(tensor_pickle("w", 4, {2}, {4}, 0)).find("outside its storage"), std::string::npos);
  // Declared storage larger than its zip entry.
  EXPECT_NE(open_error(tensor_pickle("w", 8, {8}, {1}, 0)).find("has 16 bytes, expected 8 elements"), std::string::npos);
}

TEST_F(TorchBin, RefusesAPickleReferringToAMissingStorage) {
  // The pickle names storage "0", but the archive holds no data/0 entry.
  const std::string zip = make_zip({{"archive/data.pkl", tensor_pickle("w", 4, {4}, {1}, 0)}});
  write("pytorch_model.bin", zip);
  try {
    io::TorchBinFile::open(path("pytorch_model.bin"));
    ADD_FAILURE() << "a missing storage was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is missing from the archive"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
  }
}

TEST_F(TorchBin, RefusesBrokenZips) {
  EXPECT_NE(open_error(tensor_pickle("w", 4, {4}, {1}, 0), floats(4), false, true).find("CRC-32 mismatch"), std::string::npos);
  write("pytorch_model.bin", "this is not a zip archive, just text\n");
  try {
    io::Checkpoint::open(dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path("pytorch_model.bin") + ": not a zip archive"), std::string::npos) << e.what();
  }
  const std::string zip = make_zip({{"archive/data.pkl", tensor_pickle("w", 4, {4}, {1}, 0)}, {"archive/data/0", floats(4)}});
  for (size_t cut : {zip.size() - 1, zip.size() - 30, zip.size() / 2, size_t{10}}) {
    write("pytorch_model.bin", zip.substr(0, cut));
    EXPECT_THROW(io::Checkpoint::open(path("pytorch_model.bin")), Error) << "cut at " << cut;
  }
  REQUIRE_FIXTURES();
  std::ifstream in(fixture("tiny4/bin/pytorch_model.bin"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  write("pytorch_model.bin", ss.str().substr(0, ss.str().size() / 2));
  try {
    io::Checkpoint::open(dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pytorch_model.bin: not a zip archive, or truncated"), std::string::npos) << e.what();
  }
}

TEST_F(TorchBin, ShardIndexMayNotLeaveTheDirectory) {
  write("pytorch_model.bin.index.json", R"({"weight_map": {"w": "../evil.bin"}})");
  try {
    io::Checkpoint::open(dir_.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the checkpoint directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace convnext::test
