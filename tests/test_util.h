// Helpers shared by the tests: fixture paths and the tolerance check of shared/fixtures/hf.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

#include "convnext/config.h"
#include "convnext/tensor.h"

namespace convnext::test {

// n values drawn from N(mean, scale²) with a fixed seed (the kernel tests' inputs).
inline std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f, float mean = 0.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(mean, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}
inline Tensor as_tensor(const std::vector<float>& v) { return Tensor({static_cast<int64_t>(v.size())}, v); }

// d loss / dθ by central differences (the backward tests' check of their reference twins).
template <class Loss>
double numeric(const Loss& loss, float& theta, double eps = 1e-3) {
  const float keep = theta;
  theta = static_cast<float>(keep + eps);
  const double up = loss();
  theta = static_cast<float>(keep - eps);
  const double down = loss();
  theta = keep;
  return (up - down) / (2 * eps);
}

inline std::string fixtures_dir() {
  const char* e = std::getenv("CONVNEXT_FIXTURES");
  return e ? e : CONVNEXT_FIXTURES_DIR;
}

inline std::string fixture(const std::string& rel) { return fixtures_dir() + "/" + rel; }

// A small valid config (2 stages, widths 8 and 16, 3 labels) for tests that need any model.
inline ConvNextConfig small_config() {
  ConvNextConfig c;
  c.hidden_sizes = {8, 16};
  c.depths = {1, 1};
  c.num_stages = 2;
  c.set_num_labels(3);
  c.validate_and_align();
  return c;
}

#define REQUIRE_FIXTURES()                                                                        \
  do {                                                                                            \
    if (!std::filesystem::exists(::convnext::test::fixtures_dir()))                               \
      GTEST_SKIP() << "shared fixtures not found at " << ::convnext::test::fixtures_dir()         \
                   << " (place ../shared beside the project or set CONVNEXT_FIXTURES)";           \
  } while (0)

// The same for one fixture directory (a newer one, such as v2_tiny4, may be missing from an older
// copy of the shared fixtures).
#define REQUIRE_FIXTURE(rel)                                                                      \
  do {                                                                                            \
    REQUIRE_FIXTURES();                                                                           \
    if (!std::filesystem::exists(::convnext::test::fixture(rel)))                                 \
      GTEST_SKIP() << "shared fixture " << ::convnext::test::fixture(rel) << " not found";        \
  } while (0)

// The fixtures' tolerance: max |ours − ref| ≤ rel · max(1, max |ref|), shapes equal.
inline ::testing::AssertionResult close(const Tensor& ours, const Tensor& ref, double rel = 1e-4) {
  if (ours.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(ours.shape()) << " vs reference " << shape_str(ref.shape());
  double max_ref = 1.0, max_err = 0.0;
  int64_t worst = -1;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    max_ref = std::max(max_ref, static_cast<double>(std::fabs(ref[i])));
    const double e = std::fabs(static_cast<double>(ours[i]) - ref[i]);
    if (!(e <= max_err)) {  // also catches NaN
      max_err = std::isnan(e) ? INFINITY : e;
      worst = i;
    }
  }
  if (max_err <= rel * max_ref) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << max_err << " at " << worst << " (ours " << ours[worst]
                                       << ", ref " << ref[worst] << ") > " << rel << " * " << max_ref;
}

// Runs a test-time generator in Debian's python3 (`script args...`, its output into `out`, its log
// into out.log). Returns `out` when the script exited 0 and wrote out/ok; otherwise "" with the
// reason in `why` (exit 77: `missing`, the packages it needs). Callers keep the result in a static
// so that a process runs each generator once.
inline std::string run_generator(const std::string& script_and_args, const std::string& out, const std::string& missing,
                                 std::string& why) {
  if (!std::filesystem::exists("/usr/bin/python3")) {
    why = "/usr/bin/python3 not found";
    return "";
  }
  std::filesystem::create_directories(out);
  const std::string cmd = "/usr/bin/python3 " + script_and_args + " > '" + out + ".log' 2>&1";
  const int rc = std::system(cmd.c_str());
  const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code == 0 && std::filesystem::exists(out + "/ok")) return out;
  const std::string script = script_and_args.substr(0, script_and_args.find(' '));
  why = code == 77 ? missing + " missing; see " + out + ".log"
                   : std::filesystem::path(script).filename().string() + " failed (exit " + std::to_string(code) + "); see " + out + ".log";
  return "";
}

// True when one of the warnings contains `part`.
inline bool has_note(const std::vector<std::string>& warnings, const std::string& part) {
  for (const auto& s : warnings)
    if (s.find(part) != std::string::npos) return true;
  return false;
}

// A test with its own empty directory (removed afterwards), named after the test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("convnext_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name() +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  // Writes `bytes` to dir/rel, creating the folders on the way.
  void write(const std::string& rel, const std::string& bytes) const {
    std::filesystem::create_directories(std::filesystem::path(path(rel)).parent_path());
    std::ofstream(path(rel), std::ios::binary) << bytes;
  }
  std::filesystem::path dir_;
};

}  // namespace convnext::test
