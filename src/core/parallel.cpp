// The thread pool behind parallel::for_chunks (see parallel.h for why it is not OpenMP).
//
// One loop runs on the pool at a time. The caller publishes it by storing a new generation in
// `state_` and bumping the futex word `wake_`; sleeping or spinning workers then try to *enter*
// the loop by incrementing the entry count packed in `state_`, claim chunks from `next_` until
// none are left, and count themselves out in `left_`. When the caller runs out of chunks it
// *closes* the loop (a bit in `state_`, so that no late worker enters it afterwards) and waits
// only for the workers that entered: a worker that was descheduled when the loop began never
// holds it up. A second thread that starts a loop while the pool is busy runs its loop itself.
#include "core/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "convnext/error.h"
#include "convnext/model.h"

namespace convnext {
namespace parallel {
namespace {

constexpr int kMaxThreads = 1024;

thread_local int tls_limit = 0;      // ThreadLimit; 0 = the process default
thread_local int tls_index = 0;      // thread_index()
thread_local int tls_team = 1;       // team_size()
thread_local bool tls_in_loop = false;

std::atomic<int> g_default{0};  // convnext::set_num_threads; 0 = automatic
std::atomic<bool> g_contended{false};
std::atomic<float> g_cpu_share{1.0f};  // moving average of LoadProbe's CPU time / wall time

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle thread keeps checking for work before it sleeps. Long enough to bridge the
// serial bits between the loops of one forward pass on an idle machine (a futex wake-up costs
// tens of microseconds), short enough that a thread with nothing to do gives its core back soon
// when other processes want it.
// When the process is contended the sibling a thread would wait for is probably not running, so
// spinning only burns the time slice the sibling needs: then threads sleep at once (ConvNeXt-T
// batch 1 beside six busy processes on 2 cores: about 195 ms without spinning, 230-240 ms with
// 2 or 100 µs). CONVNEXT_SPIN_US / CONVNEXT_CONTENDED_SPIN_US override the two (experiments).
std::chrono::nanoseconds env_microseconds(const char* name, long fallback) {
  const char* s = std::getenv(name);
  return std::chrono::microseconds(std::max(0L, s ? std::strtol(s, nullptr, 10) : fallback));
}

std::chrono::nanoseconds spin_time() {
  static const std::chrono::nanoseconds idle = env_microseconds("CONVNEXT_SPIN_US", 50);
  static const std::chrono::nanoseconds contended = env_microseconds("CONVNEXT_CONTENDED_SPIN_US", 0);
  return g_contended.load(std::memory_order_relaxed) ? std::min(idle, contended) : idle;
}

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Spins until pred() holds or spin_time() passes; true when pred() held.
template <class Pred>
bool spin_until(Pred pred) {
  if (pred()) return true;
  const auto limit = spin_time();
  if (limit.count() == 0) return false;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    cpu_relax();
    if (pred()) return true;
    if ((i & 63) == 0 && std::chrono::steady_clock::now() - t0 > limit) return false;
  }
}

// A loop on the calling thread alone (nested in another loop, one thread, or the pool busy).
void run_inline(int64_t n, int64_t chunk, detail::ChunkFn fn, void* ctx) {
  const bool was = tls_in_loop;
  const int team = tls_team;
  tls_in_loop = true;
  tls_team = 1;
  for (int64_t b = 0; b < n; b += chunk) fn(ctx, b, std::min(n, b + chunk));
  tls_in_loop = was;
  tls_team = team;
}

class Pool {
 public:
  // A loop on `threads` (>= 2) threads, or on the caller alone when another loop has the pool.
  void run(int64_t n, int64_t chunk, int threads, detail::ChunkFn fn, void* ctx) {
    std::unique_lock<std::mutex> lock(submit_, std::try_to_lock);
    if (!lock.owns_lock()) return run_inline(n, chunk, fn, ctx);
    grow(threads - 1);
    fn_ = fn, ctx_ = ctx, n_ = n, chunk_ = chunk;
    chunks_ = (n + chunk - 1) / chunk;
    team_ = threads;
    next_.store(0, std::memory_order_relaxed);
    left_.store(0, std::memory_order_relaxed);
    gen_ = (gen_ + 1) & 0x7fffffffu;
    state_.store(gen_ << 33 | static_cast<uint64_t>(threads - 1) << 16, std::memory_order_release);
    wake_.fetch_add(1, std::memory_order_release);
    wake_.notify_all();

    work(0);
    const uint64_t s = state_.fetch_or(kClosed, std::memory_order_acq_rel);
    const uint32_t entered = static_cast<uint32_t>(s & kCountMask);
    if (!spin_until([&] { return left_.load(std::memory_order_acquire) == entered; })) {
      for (uint32_t l = left_.load(std::memory_order_acquire); l != entered; l = left_.load(std::memory_order_acquire))
        left_.wait(l, std::memory_order_acquire);
    }
  }

 private:
  // state_: generation << 33 | closed << 32 | workers wanted << 16 | workers entered.
  static constexpr uint64_t kClosed = 1ull << 32;
  static constexpr uint64_t kCountMask = 0xffff;


  // Claims and runs chunks until none are left, as thread `index` of the loop.
  void work(int index) {
    tls_index = index;
    tls_team = team_;
    tls_in_loop = true;
    for (int64_t c = next_.fetch_add(1, std::memory_order_relaxed); c < chunks_;
         c = next_.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t b = c * chunk_;
      fn_(ctx_, b, std::min(n_, b + chunk_));
    }
    tls_in_loop = false;
    tls_team = 1;
    tls_index = 0;
  }

  void grow(int workers) {
    workers = std::min(workers, kMaxThreads - 1);
    while (static_cast<int>(threads_.size()) < workers) {
      threads_.emplace_back([this] { worker_loop(); });
    }
  }

  void worker_loop() {
    uint32_t seen = wake_.load(std::memory_order_acquire);
    for (;;) {
      if (!spin_until([&] { return wake_.load(std::memory_order_acquire) != seen; })) wake_.wait(seen);
      seen = wake_.load(std::memory_order_acquire);
      // Enter the published loop unless it is closed or has all the workers it asked for.
      uint64_t s = state_.load(std::memory_order_acquire);
      for (;;) {
        if ((s & kClosed) || (s & kCountMask) >= ((s >> 16) & kCountMask)) break;
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          work(static_cast<int>(s & kCountMask) + 1);
          left_.fetch_add(1, std::memory_order_release);
          left_.notify_one();
          break;
        }
      }
    }
  }

  std::mutex submit_;
  std::vector<std::thread> threads_;
  // The published loop: written by the caller before the release store to state_, read by a
  // worker only after it entered through an acquire on state_.
  detail::ChunkFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, chunks_ = 0;
  int team_ = 1;
  uint64_t gen_ = 0;
  std::atomic<uint64_t> state_{kClosed};
  std::atomic<uint32_t> wake_{0};
  std::atomic<uint32_t> left_{0};
  std::atomic<int64_t> next_{0};
};

// The pool is never destroyed (its workers sleep until the process exits), and a child made by
// fork() gets a fresh one: it inherits the pool's memory but not its threads. Every parallel loop
// asks for it, so the lock is taken only until it exists.
std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
  if (Pool* p = g_pool.load(std::memory_order_acquire)) return *p;
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  static const bool atfork = pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr, std::memory_order_relaxed); }) == 0;
  (void)atfork;
  if (!g_pool.load(std::memory_order_relaxed)) g_pool.store(new Pool, std::memory_order_release);
  return *g_pool.load(std::memory_order_relaxed);
}

int automatic_threads() {
  static const int n = [] {
    const int env = env_num_threads();
    return env > 0 ? env : available_cpus();
  }();
  return n;
}

// A cgroup v2 CPU quota ("200000 100000" in cpu.max = 2 CPUs), or 0 when there is none.
int cgroup_cpu_limit() {
  std::string path = "/";
  std::ifstream cg("/proc/self/cgroup");
  for (std::string line; std::getline(cg, line);)
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  for (const std::string& file : {"/sys/fs/cgroup" + path + "/cpu.max", std::string("/sys/fs/cgroup/cpu.max")}) {
    std::ifstream f(file);
    std::string quota;
    double period = 0;
    if (f >> quota >> period && quota != "max" && period > 0) {
      const double q = std::strtod(quota.c_str(), nullptr);
      if (q > 0) return std::max(1, static_cast<int>(std::ceil(q / period)));
    }
  }
  return 0;
}

}  // namespace

int available_cpus() {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (const int quota = cgroup_cpu_limit(); quota > 0) n = std::min(n, quota);
  return std::clamp(n, 1, kMaxThreads);
}

int env_num_threads() {
  const char* s = std::getenv("CONVNEXT_NUM_THREADS");
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > kMaxThreads)
    throw Error("CONVNEXT_NUM_THREADS=" + std::string(s) + ": expected a thread count from 0 (automatic) to 1024");
  return static_cast<int>(v);
}

int max_threads() {
  if (tls_in_loop) return 1;
  if (tls_limit > 0) return tls_limit;
  const int d = g_default.load(std::memory_order_relaxed);
  return d > 0 ? d : automatic_threads();
}

bool contended() { return g_contended.load(std::memory_order_relaxed); }
void set_contended(bool c) {
  g_cpu_share.store(c ? 0.0f : 1.0f, std::memory_order_relaxed);
  g_contended.store(c, std::memory_order_relaxed);
}

LoadProbe::LoadProbe() : wall0_ns_(now_ns(CLOCK_MONOTONIC)), cpu0_ns_(now_ns(CLOCK_THREAD_CPUTIME_ID)) {}

// A pass on an idle machine keeps its thread on the CPU (waits for siblings are short spins), so
// its CPU time is close to its wall time; beside competing processes the thread gets a fraction.
// The average over passes decides, with hysteresis so that it does not flip on one slow pass.
LoadProbe::~LoadProbe() {
  const int64_t wall = now_ns(CLOCK_MONOTONIC) - wall0_ns_;
  if (wall < 500000) return;  // too short to tell a time slice from noise
  const float share = static_cast<float>(now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0_ns_) / static_cast<float>(wall);
  const float avg = 0.5f * g_cpu_share.load(std::memory_order_relaxed) + 0.5f * std::min(share, 1.0f);
  g_cpu_share.store(avg, std::memory_order_relaxed);
  if (avg < 0.6f) g_contended.store(true, std::memory_order_relaxed);
  else if (avg > 0.8f) g_contended.store(false, std::memory_order_relaxed);
}

int thread_index() { return tls_index; }
int team_size() { return tls_team; }
bool in_parallel() { return tls_in_loop; }

ThreadLimit::ThreadLimit(int threads) : saved_(tls_limit) { tls_limit = std::clamp(threads, 0, kMaxThreads); }
ThreadLimit::~ThreadLimit() { tls_limit = saved_; }

namespace detail {
void run(int64_t n, int64_t chunk, int threads, ChunkFn fn, void* ctx) {
  if (threads <= 0) threads = max_threads();
  if (tls_in_loop) threads = 1;
  threads = static_cast<int>(std::min<int64_t>(threads, (n + chunk - 1) / chunk));
  if (threads <= 1) return run_inline(n, chunk, fn, ctx);
  pool().run(n, chunk, threads, fn, ctx);
}
}  // namespace detail

}  // namespace parallel

void set_num_threads(int n) {
  if (n < 0 || n > parallel::kMaxThreads)
    throw Error("thread count " + std::to_string(n) + ": expected 0 (automatic) to 1024");
  parallel::g_default.store(n, std::memory_order_relaxed);
}

int num_threads() { return parallel::max_threads(); }

}  // namespace convnext
