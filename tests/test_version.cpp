// `convnext version` and convnext/version.h: the version of CMakeLists.txt, a git revision, the
// kernel family the dispatcher uses, the dtypes, the optional components built in.
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "cli_util.h"
#include "convnext/version.h"
#include "kernels/kernels.h"
#include "test_util.h"
#include "train/distributed.h"

namespace convnext::test {
namespace {

TEST(Version, BuildInfo) {
  const BuildInfo b = build_info();
  EXPECT_EQ(b.version, CONVNEXT_PROJECT_VERSION);
  EXPECT_STREQ(version(), CONVNEXT_PROJECT_VERSION);
  EXPECT_EQ(b.git_revision, git_revision());
  EXPECT_EQ(b.kernels, kernels::family_name(kernels::selected_family()));
  EXPECT_EQ(b.dtypes, (std::vector<std::string>{"f32", "bf16", "int8"}));
  EXPECT_EQ(b.mpi, train::mpi_built_in());  // the build's MPI and the training code agree
  // From a git checkout: the commit (12 hex digits, "-dirty" with local changes); else "unknown".
  if (std::filesystem::exists(std::string(CONVNEXT_SOURCE_DIR) + "/.git"))
    EXPECT_TRUE(std::regex_match(b.git_revision, std::regex("[0-9a-f]{12}(-dirty)?"))) << b.git_revision;
  else
    EXPECT_EQ(b.git_revision, "unknown");
}

TEST(Version, JsonHasExactlyTheDocumentedKeys) {
  const CliRun r = run("version --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"version", "git_revision", "kernels", "dtypes", "components"}));
  const BuildInfo b = build_info();
  EXPECT_EQ(j["version"], b.version);
  EXPECT_EQ(j["git_revision"], b.git_revision);
  EXPECT_EQ(j["kernels"], b.kernels);
  EXPECT_EQ(j["dtypes"], nlohmann::json({"f32", "bf16", "int8"}));
#ifdef CONVNEXT_HAVE_SERVE
  const bool serve = true;
#else
  const bool serve = false;
#endif
  EXPECT_EQ(j["components"], nlohmann::json({{"hdf5", b.hdf5}, {"curl", b.curl}, {"mpi", b.mpi}, {"serve", serve}}));
}

TEST(Version, KernelsHonourConvnextKernels) {
  const CliRun r = run("version --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string native = nlohmann::json::parse(r.out)["kernels"];
  EXPECT_TRUE(native == "avx512" || native == "portable") << native;
  // For the child only: restored before this process reads it.
  const char* before = std::getenv("CONVNEXT_KERNELS");
  const std::string saved = before ? before : "";
  ::setenv("CONVNEXT_KERNELS", "portable", 1);
  const CliRun p = run("version --json");
  if (before) ::setenv("CONVNEXT_KERNELS", saved.c_str(), 1);
  else ::unsetenv("CONVNEXT_KERNELS");
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(nlohmann::json::parse(p.out)["kernels"], "portable");
}

TEST(Version, OneInstructionSetForTheModelAndTheResize) {
  // core/cpu.h decides for every kernel: "reference" means plain C++ for the model too (it used to
  // mean it only for the resize), and "avx2" runs the model on the portable family (no AVX2 GEMM).
  for (const char* forced : {"reference", "avx2", "portable"}) {
    const char* before = std::getenv("CONVNEXT_KERNELS");
    const std::string saved = before ? before : "";
    ::setenv("CONVNEXT_KERNELS", forced, 1);
    const CliRun p = run("version --json");
    if (before) ::setenv("CONVNEXT_KERNELS", saved.c_str(), 1);
    else ::unsetenv("CONVNEXT_KERNELS");
    ASSERT_EQ(p.status, 0) << p.err;
    EXPECT_EQ(nlohmann::json::parse(p.out)["kernels"], "portable") << forced;
  }
}

TEST(Version, TextAndHelp) {
  const CliRun r = run("version");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind(std::string("convnext ") + CONVNEXT_PROJECT_VERSION + "\n", 0), 0u) << r.out;
  for (const char* line : {"git revision", "kernels", "dtypes        f32, bf16", "components    hdf5 "})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in\n" << r.out;
  const CliRun h = run("version --help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("usage: convnext version [--json]"), std::string::npos) << h.out;
  EXPECT_NE(run("--help").out.find("  version "), std::string::npos);
  EXPECT_EQ(run("--version").out, std::string("convnext ") + CONVNEXT_PROJECT_VERSION + "\n");
  const CliRun bad = run("version extra");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("unexpected argument 'extra'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace convnext::test
