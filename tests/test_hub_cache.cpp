// A hub id ("org/name[@revision]") resolves offline to its snapshot in the Hugging Face cache,
// laid out as huggingface_hub writes it (refs/<branch> → snapshots/<hash>/, files symlinked to blobs).
#include <cstdlib>
#include <fstream>

#include "convnext/convnext.h"
#include "io/hub_cache.h"
#include "test_util.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

TEST(HubCache, ResolvesIdsThroughRefsAndSnapshots) {
  REQUIRE_FIXTURES();
  const fs::path cache = fs::temp_directory_path() / ("convnext_hub_" + std::to_string(::getpid()));
  const fs::path repo = cache / "models--acme--convnext-test";
  const std::string hash = "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / hash);
  std::ofstream(repo / "refs" / "main") << hash;
  for (const char* f : {"config.json", "model.safetensors"}) {  // blobs + relative symlinks, as huggingface_hub does
    fs::copy_file(fixture(std::string("tiny4/") + f), repo / "blobs" / (std::string("blob-") + f));
    fs::create_symlink(fs::path("../../blobs") / (std::string("blob-") + f), repo / "snapshots" / hash / f);
  }
  ::setenv("HF_HUB_CACHE", cache.c_str(), 1);
  EXPECT_EQ(io::resolve_model_path("acme/convnext-test"), (repo / "snapshots" / hash).string());
  EXPECT_EQ(io::resolve_model_path("acme/convnext-test@" + hash), (repo / "snapshots" / hash).string());
  auto model = ConvNextForImageClassification::from_pretrained("acme/convnext-test");
  const Tensor px = load_tensor(fixture("tiny4/expected.safetensors"), "pixel_values");
  EXPECT_TRUE(close(model.forward(px).logits, load_tensor(fixture("tiny4/expected.safetensors"), "logits")));
  // Not cached: one line saying where it looked. Not an id at all: a plain missing path.
  try {
    io::resolve_model_path("acme/other-model");
    ADD_FAILURE() << "resolved a model that is not cached";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("models--acme--other-model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::resolve_model_path("../etc/passwd/x"), Error);
  EXPECT_THROW(io::resolve_model_path("acme/../../x"), Error);
  ::unsetenv("HF_HUB_CACHE");
  fs::remove_all(cache);
}

}  // namespace
}  // namespace convnext::test
