// `convnext download` / io::hub_download_model against tests/fake_hub.py, a stand-in for the
// Hugging Face hub on 127.0.0.1 (no other host is contacted): the cache layout huggingface_hub
// writes, resuming after a dropped connection, 401 without the token, sha256 verification.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "convnext/convnext.h"
#include "io/hub_download.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

const char* kCommit = "3f1e2d4c5b6a79880123456789abcdef01234567";  // fake_hub.py's COMMIT
const char* kPython = "/usr/bin/python3";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The fake hub, started with popen and always killed (SIGTERM, then reaped) when this goes away;
// it also exits by itself after 120 s or when this process dies.
class FakeHub {
 public:
  FakeHub(const std::string& mode, const fs::path& log) : log_(log) {
    const std::string cmd = std::string("exec ") + kPython + " " + CONVNEXT_SOURCE_DIR + "/tests/fake_hub.py --root '" +
                            fixture("tiny4") + "' --mode " + mode + " --timeout 120 --log '" + log.string() + "'";
    pipe_ = popen(cmd.c_str(), "r");
    if (pipe_ && std::fscanf(pipe_, "%d %d", &port_, &pid_) != 2) port_ = pid_ = 0;
  }
  ~FakeHub() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    if (pipe_) pclose(pipe_);  // waits for it
  }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;
  bool ok() const { return port_ > 0 && pid_ > 0; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return slurp(log_); }

 private:
  FILE* pipe_ = nullptr;
  int port_ = 0, pid_ = 0;
  fs::path log_;
};

class HubDownload : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "cache");
    ::setenv("HF_HUB_CACHE", (dir_ / "cache").c_str(), 1);
    ::unsetenv("HF_TOKEN");
    ::unsetenv("HUGGING_FACE_HUB_TOKEN");
    ::setenv("HF_TOKEN_PATH", (dir_ / "no-token").c_str(), 1);
  }
  void TearDown() override {
    hub_.reset();
    for (const char* v : {"HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HF_TOKEN_PATH"}) ::unsetenv(v);
    TempDirTest::TearDown();
  }
  // Starts the fake hub in `mode`; false (the test then skips) without python3.
  bool start(const std::string& mode) {
    if (!fs::exists(kPython)) return false;
    hub_ = std::make_unique<FakeHub>(mode, dir_ / "requests.log");
    EXPECT_TRUE(hub_->ok()) << "tests/fake_hub.py did not start";
    ::setenv("HF_ENDPOINT", hub_->endpoint().c_str(), 1);
    return hub_->ok();
  }
  fs::path repo() const { return dir_ / "cache" / "models--acme--tiny4"; }
  fs::path snapshot() const { return repo() / "snapshots" / kCommit; }

  std::unique_ptr<FakeHub> hub_;
};

#define START_HUB(mode)                                                              \
  do {                                                                               \
    REQUIRE_FIXTURES();                                                              \
    if (!build_info().curl) GTEST_SKIP() << "built without libcurl (-DCONVNEXT_WITH_CURL=OFF)"; \
    if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " not found (fake hub)";    \
    ASSERT_TRUE(start(mode));                                                        \
  } while (0)

TEST(HubDownloadSha256, KnownAnswers) {
  EXPECT_EQ(io::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(io::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 56 bytes
  EXPECT_EQ(io::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  io::Sha256 s;  // a million 'a', in 1000-byte pieces, then in uneven ones
  const std::string a(1000, 'a');
  for (int i = 0; i < 1000; ++i) s.update(a.data(), a.size());
  EXPECT_EQ(s.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  io::Sha256 t;
  for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 97 + 1)
    t.update(a.data(), std::min<size_t>(step, 1000000 - done));
  EXPECT_EQ(t.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_F(HubDownload, WritesTheHubCacheLayoutAndLoads) {
  START_HUB("normal");
  const auto r = io::hub_download_model("acme/tiny4");
  EXPECT_EQ(r.commit, kCommit);
  EXPECT_EQ(r.snapshot_dir, snapshot().string());
  ASSERT_EQ(r.files.size(), 2u);  // tiny4 has no preprocessor_config.json: a 404 that is fine
  EXPECT_EQ(r.files[0].filename, "config.json");
  EXPECT_EQ(r.files[1].filename, "model.safetensors");
  const std::string sha = io::sha256_hex_of_file(fixture("tiny4/model.safetensors"));
  EXPECT_EQ(r.files[1].blob, sha);
  EXPECT_TRUE(r.files[1].downloaded);
  // huggingface_hub's layout: relative symlinks into blobs/<etag>, refs/main = the commit.
  ASSERT_TRUE(fs::is_symlink(snapshot() / "model.safetensors"));
  EXPECT_EQ(fs::read_symlink(snapshot() / "model.safetensors"), fs::path("../../blobs/" + sha));
  EXPECT_TRUE(fs::is_symlink(snapshot() / "config.json"));
  EXPECT_EQ(slurp(snapshot() / "model.safetensors"), slurp(fixture("tiny4/model.safetensors")));
  EXPECT_EQ(slurp(snapshot() / "config.json"), slurp(fixture("tiny4/config.json")));
  EXPECT_FALSE(fs::exists(snapshot() / "preprocessor_config.json"));
  EXPECT_EQ(slurp(repo() / "refs" / "main"), kCommit);
  for (const auto& e : fs::directory_iterator(repo() / "blobs"))
    EXPECT_EQ(e.path().extension(), "") << "left behind: " << e.path();
  EXPECT_EQ(hub_->log().find("auth=yes"), std::string::npos);  // no token configured: none sent

  auto model = ConvNextForImageClassification::from_pretrained("acme/tiny4");
  const Tensor px = load_tensor(fixture("tiny4/expected.safetensors"), "pixel_values");
  EXPECT_TRUE(close(model.forward(px).logits, load_tensor(fixture("tiny4/expected.safetensors"), "logits")));

  // Again: everything is cached, nothing is fetched from the CDN (one GET /cdn/ in the log).
  const auto again = io::hub_download_model("acme/tiny4");
  for (const auto& f : again.files) EXPECT_FALSE(f.downloaded) << f.filename;
  const std::string log = hub_->log();
  EXPECT_NE(log.find("GET /cdn/"), std::string::npos) << log;
  EXPECT_EQ(log.find("GET /cdn/"), log.rfind("GET /cdn/")) << log;

  // Missing files: optional → false; required → a 404 error naming the file.
  EXPECT_FALSE(io::hub_download_file("acme/tiny4", "tf_model.h5", {}, true));
  try {
    io::hub_download_file("acme/tiny4", "tf_model.h5", {}, false);
    ADD_FAILURE() << "no error for a missing required file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tf_model.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
  try {
    io::hub_download_model("acme/nothing-here");
    ADD_FAILURE() << "no error for a missing repository";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repository acme/nothing-here not found"), std::string::npos) << e.what();
  }
  io::HubDownloadOptions bad_rev;
  bad_rev.revision = "v9";
  EXPECT_THROW(io::hub_download_model("acme/tiny4", bad_rev), Error);
}

TEST_F(HubDownload, CommandLine) {
  START_HUB("normal");
  const fs::path cache2 = dir_ / "cache2", out = dir_ / "out.txt";
  const std::string cmd = "HF_HUB_CACHE='" + cache2.string() + "' " + CONVNEXT_CLI + " download acme/tiny4 --revision " +
                          kCommit + " >'" + out.string() + "' 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << slurp(out);
  const fs::path snap = cache2 / "models--acme--tiny4" / "snapshots" / kCommit;
  EXPECT_NE(slurp(out).find(snap.string()), std::string::npos) << slurp(out);
  EXPECT_NE(slurp(out).find("downloaded"), std::string::npos) << slurp(out);
  EXPECT_TRUE(fs::exists(snap / "model.safetensors"));
  EXPECT_FALSE(fs::exists(cache2 / "models--acme--tiny4" / "refs" / kCommit));  // a hash needs no ref
  const std::string help = std::string(CONVNEXT_CLI) + " download --help >'" + out.string() + "' 2>&1";
  EXPECT_EQ(std::system(help.c_str()), 0);
  EXPECT_NE(slurp(out).find("usage: convnext download ID"), std::string::npos);
}

TEST_F(HubDownload, ResumesAfterADroppedConnection) {
  START_HUB("drop");
  const auto r = io::hub_download_model("acme/tiny4");
  EXPECT_EQ(slurp(snapshot() / "model.safetensors"), slurp(fixture("tiny4/model.safetensors")));
  const std::string log = hub_->log();
  const uint64_t half = fs::file_size(fixture("tiny4/model.safetensors")) / 2;
  // The first GET stopped half-way; the second asked for the rest only.
  EXPECT_NE(log.find("range=bytes=" + std::to_string(half) + "- auth=no status=206"), std::string::npos) << log;
  auto model = ConvNextForImageClassification::from_pretrained("acme/tiny4");
  const Tensor px = load_tensor(fixture("tiny4/expected.safetensors"), "pixel_values");
  EXPECT_TRUE(close(model.forward(px).logits, load_tensor(fixture("tiny4/expected.safetensors"), "logits")));
}

TEST_F(HubDownload, TokenRequired) {
  START_HUB("token");
  for (const char* token : {"", "hf_wrong"}) {
    if (*token) ::setenv("HF_TOKEN", token, 1);
    try {
      io::hub_download_model("acme/tiny4");
      ADD_FAILURE() << "downloaded without the right token";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("401"), std::string::npos) << m;
      EXPECT_NE(m.find(*token ? "refused" : "set HF_TOKEN"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  EXPECT_FALSE(fs::exists(snapshot()));
  ::setenv("HF_TOKEN", "hf_test_token", 1);
  const auto r = io::hub_download_model("acme/tiny4");
  EXPECT_EQ(slurp(snapshot() / "model.safetensors"), slurp(fixture("tiny4/model.safetensors")));
  EXPECT_NE(hub_->log().find("auth=yes status=200"), std::string::npos);
}

TEST_F(HubDownload, ChecksumMismatchIsAnErrorAndLeavesNoFile) {
  START_HUB("corrupt");
  try {
    io::hub_download_model("acme/tiny4");
    ADD_FAILURE() << "accepted content whose sha256 is not the ETag";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  const std::string sha = io::sha256_hex_of_file(fixture("tiny4/model.safetensors"));
  EXPECT_FALSE(fs::exists(snapshot() / "model.safetensors"));
  EXPECT_FALSE(fs::is_symlink(snapshot() / "model.safetensors"));
  EXPECT_FALSE(fs::exists(repo() / "blobs" / sha));
  EXPECT_FALSE(fs::exists(repo() / "blobs" / (sha + ".incomplete")));
}

TEST_F(HubDownload, RefusesPlainHttpToOtherHosts) {
  if (!build_info().curl) GTEST_SKIP() << "built without libcurl (-DCONVNEXT_WITH_CURL=OFF)";
  ::setenv("HF_ENDPOINT", "http://example.com", 1);  // refused before any connection is made
  try {
    io::hub_download_model("acme/tiny4");
    ADD_FAILURE() << "used plain http to a remote host";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only https"), std::string::npos) << e.what();
  }
  ::setenv("HF_ENDPOINT", "http://127.0.0.1:1", 1);
  EXPECT_THROW(io::hub_download_file("../x", "config.json", {}, false), Error);
  EXPECT_THROW(io::hub_download_file("acme/tiny4", "../../etc/passwd", {}, false), Error);
}

// Built without libcurl, `download` (and the API) is one line saying how to enable it.
TEST_F(HubDownload, WithoutCurlTheErrorSaysHowToEnableIt) {
  if (build_info().curl) GTEST_SKIP() << "built with libcurl";
  const std::string how = "needs libcurl support: rebuild with libcurl4-openssl-dev installed and -DCONVNEXT_WITH_CURL=ON";
  try {
    io::hub_download_model("acme/tiny4");
    ADD_FAILURE() << "downloaded without libcurl";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(how), std::string::npos) << e.what();
  }
  const fs::path out = dir_ / "out.txt";
  const std::string cmd = std::string(CONVNEXT_CLI) + " download acme/tiny4 >'" + out.string() + "' 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(slurp(out).find(how), std::string::npos) << slurp(out);
}

}  // namespace
}  // namespace convnext::test
