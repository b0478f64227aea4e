// The thread pool (src/core/parallel.h): every index exactly once whatever the chunking and the
// thread count, nested loops inline, several callers at once, a forked child, thread-count
// validation, and reductions that give the same bits on any number of threads.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "convnext/error.h"
#include "convnext/model.h"
#include "core/parallel.h"
#include "kernels/kernels.h"

namespace convnext::test {
namespace {

// Each index of [0, n) visited exactly once.
void expect_each_index_once(int64_t n, int64_t chunk, int threads) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> bad_index{0};
  parallel::for_chunks(n, chunk, [&](int64_t b, int64_t e) {
    if (b < 0 || e > n || b >= e || (e - b > chunk && chunk >= 1)) bad_index.fetch_add(1);
    if (parallel::thread_index() < 0 || parallel::thread_index() >= std::max(1, parallel::team_size())) bad_index.fetch_add(1);
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  }, threads);
  EXPECT_EQ(bad_index.load(), 0) << "n=" << n << " chunk=" << chunk << " threads=" << threads;
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "index " << i << " n=" << n;
}

TEST(Parallel, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {0, 1, 2, 7, 64, 1000, 4097})
      for (int64_t chunk : {1, 3, 64, 5000}) expect_each_index_once(n, chunk, threads);
}

TEST(Parallel, ForEachVisitsEveryIndexWithAndWithoutThreads) {
  for (bool worth : {false, true}) {
    std::vector<int> v(10007, 0);
    parallel::for_each(static_cast<int64_t>(v.size()), worth, [&](int64_t i) { v[static_cast<size_t>(i)] += 1; });
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], 1) << i;
  }
}

TEST(Parallel, NestedLoopsRunOnTheThreadThatReachesThem) {
  std::atomic<int> nested_threads_wrong{0}, total{0};
  parallel::for_chunks(16, 1, [&](int64_t, int64_t) {
    EXPECT_TRUE(parallel::in_parallel());
    if (parallel::max_threads() != 1) nested_threads_wrong.fetch_add(1);
    const std::thread::id me = std::this_thread::get_id();
    parallel::for_chunks(100, 7, [&](int64_t b, int64_t e) {
      if (std::this_thread::get_id() != me) nested_threads_wrong.fetch_add(1);
      total.fetch_add(static_cast<int>(e - b));
    });
  }, 4);
  EXPECT_EQ(nested_threads_wrong.load(), 0);
  EXPECT_EQ(total.load(), 1600);
  EXPECT_FALSE(parallel::in_parallel());
}

TEST(Parallel, SeveralCallersAtOnce) {
  // Four application threads start loops together: one gets the pool, the others run theirs
  // on themselves; every loop completes with every index once.
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep) {
        std::vector<int> v(999, 0);
        parallel::for_chunks(999, 10, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) v[static_cast<size_t>(i)] += 1;
        }, 3);
        for (int x : v)
          if (x != 1) failures.fetch_add(1);
      }
    });
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Parallel, ManyShortLoopsInARow) {
  // The publish / enter / close handshake, 20000 times with threads that sleep and wake.
  int64_t sum = 0;
  for (int rep = 0; rep < 20000; ++rep) {
    std::atomic<int64_t> s{0};
    parallel::for_chunks(6, 1, [&](int64_t b, int64_t) { s.fetch_add(b + 1); }, 3);
    sum += s.load();
  }
  EXPECT_EQ(sum, 20000 * 21);
}

TEST(Parallel, ThreadLimitAppliesToTheCallingThreadOnly) {
  const int before = parallel::max_threads();
  {
    parallel::ThreadLimit one(1);
    EXPECT_EQ(parallel::max_threads(), 1);
    int other = 0;
    std::thread([&] { other = parallel::max_threads(); }).join();
    EXPECT_EQ(other, before);
  }
  EXPECT_EQ(parallel::max_threads(), before);
}

TEST(Parallel, ThreadCountsAreValidated) {
  EXPECT_THROW(set_num_threads(-3), Error);
  EXPECT_THROW(set_num_threads(1025), Error);
  EXPECT_THROW(set_num_threads(1000000), Error);
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  set_num_threads(0);  // automatic again
  EXPECT_EQ(num_threads(), parallel::max_threads());
  EXPECT_GE(parallel::available_cpus(), 1);
}

TEST(Parallel, EnvironmentVariableIsParsedStrictly) {
  const char* saved = std::getenv("CONVNEXT_NUM_THREADS");
  const std::string keep = saved ? saved : "";
  setenv("CONVNEXT_NUM_THREADS", "3", 1);
  EXPECT_EQ(parallel::env_num_threads(), 3);
  setenv("CONVNEXT_NUM_THREADS", "0", 1);
  EXPECT_EQ(parallel::env_num_threads(), 0);
  for (const char* bad : {"-1", "1025", "two", "2x", "99999999999999999999"}) {
    setenv("CONVNEXT_NUM_THREADS", bad, 1);
    try {
      parallel::env_num_threads();
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("CONVNEXT_NUM_THREADS"), std::string::npos) << e.what();
    }
  }
  if (saved) setenv("CONVNEXT_NUM_THREADS", keep.c_str(), 1);
  else unsetenv("CONVNEXT_NUM_THREADS");
}

TEST(Parallel, AForkedChildGetsAWorkingPool) {
  parallel::for_chunks(100, 1, [](int64_t, int64_t) {}, 2);  // the parent's workers exist
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::atomic<int> n{0};
    parallel::for_chunks(1000, 3, [&](int64_t b, int64_t e) { n.fetch_add(static_cast<int>(e - b)); }, 2);
    _exit(n.load() == 1000 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Parallel, ReductionsGiveTheSameBitsOnAnyThreadCount) {
  // column_sums (bias gradients) on 1, 2 and 3 threads: slices are fixed by the shape, so the
  // sum is the same to the last bit.
  const int64_t rows = 3001, C = 96;
  std::vector<float> x(static_cast<size_t>(rows * C));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    std::vector<float> out(static_cast<size_t>(C), 0.0f);
    kernels::column_sums({threads, kernels::selected_family()}, x.data(), rows, C, out.data());
    results.push_back(out);
  }
  for (size_t t = 1; t < results.size(); ++t)
    EXPECT_EQ(std::memcmp(results[0].data(), results[t].data(), results[0].size() * sizeof(float)), 0);
}

TEST(Parallel, ContendedTilingGivesTheSameNumbers) {
  // ConvNeXt-T at 224 on 2 threads: stage 3 (196 pixels) runs its MLP as one row slice per thread
  // on an idle machine, and as column-split GEMMs when the process is contended. Both tilings
  // compute every output with the same sums in the same order.
  ExecutionContext two;
  two.threads = 2;
  const ConvNextForImageClassification model(ConvNextConfig::preset("tiny", 10), 0, true);
  Tensor px({1, 3, 224, 224});
  for (int64_t i = 0; i < px.numel(); ++i) px[i] = static_cast<float>((i * 7919) % 255) / 127.5f - 1.0f;
  parallel::set_contended(false);
  const Tensor idle = model.forward(px, nullptr, false, two).logits;
  parallel::set_contended(true);
  const Tensor busy = model.forward(px, nullptr, false, two).logits;
  parallel::set_contended(false);
  ASSERT_EQ(idle.shape(), busy.shape());
  for (int64_t i = 0; i < idle.numel(); ++i) EXPECT_EQ(idle[i], busy[i]) << i;
}

}  // namespace
}  // namespace convnext::test
