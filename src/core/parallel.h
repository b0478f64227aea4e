// The library's threads: one pool, and loops split into chunks that whichever thread is running
// takes next.
//
// Why not OpenMP: libgomp's threads spin at every barrier and its static schedules give each
// thread a fixed share, so on a machine where other processes compete for the cores a region
// lasts as long as its most descheduled thread, and spinning threads take the time slices their
// own siblings need (ConvNeXt-T batch 1 beside six busy processes on 2 cores: 778 ms with two
// OpenMP threads, 252 ms with one). Here every loop is cut into more chunks than threads and the
// chunks are claimed from an atomic counter, the calling thread works too and never waits for a
// worker that has not started (a late worker finds no chunk left and goes back to sleep), and
// idle threads spin only briefly before sleeping on a futex.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace convnext::parallel {

// Threads a loop started on this thread may use: 1 inside a parallel loop (nested loops run on
// the thread that reaches them), else the thread limit (set_thread_limit, or the process-wide
// default: convnext::set_num_threads, $CONVNEXT_NUM_THREADS, else the CPUs this process may use).
int max_threads();
// Index of the calling thread within the running loop, in [0, threads of that loop); 0 outside.
int thread_index();
// Threads taking part in the running loop (1 outside a loop, or in a loop run inline).
int team_size();
bool in_parallel();

// The CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota.
int available_cpus();
// Reads CONVNEXT_NUM_THREADS: 0 when unset or 0 (automatic); throws Error when it is not an
// integer in [0, 1024].
int env_num_threads();

// Whether the process is short of CPU: other processes compete for the cores, so a thread that
// starts a loop is often descheduled and its siblings run late. Measured by LoadProbe over whole
// passes (the calling thread's CPU time against wall time); callers use it to cut work finer so
// that no loop waits long on a descheduled thread, and idle threads then spin less.
bool contended();

// Sets contended() until the next LoadProbe decides otherwise (tests, benchmarks).
void set_contended(bool contended);

// Measures its own lifetime on the calling thread (wall and thread CPU time) and updates
// contended(). Wrap a whole pass (a forward of a model), not a single loop.
class LoadProbe {
 public:
  LoadProbe();
  ~LoadProbe();
  LoadProbe(const LoadProbe&) = delete;
  LoadProbe& operator=(const LoadProbe&) = delete;

 private:
  int64_t wall0_ns_, cpu0_ns_;
};

// Overrides the thread limit for loops started on the calling thread (0 = the process default),
// for the lifetime of the guard; for example a data-loading thread that must stay single-threaded.
class ThreadLimit {
 public:
  explicit ThreadLimit(int threads);
  ~ThreadLimit();
  ThreadLimit(const ThreadLimit&) = delete;
  ThreadLimit& operator=(const ThreadLimit&) = delete;

 private:
  int saved_;
};

namespace detail {
using ChunkFn = void (*)(void* ctx, int64_t begin, int64_t end);
void run(int64_t n, int64_t chunk, int threads, ChunkFn fn, void* ctx);
}  // namespace detail

// Calls body(begin, end) over [0, n) in chunks of `chunk` indices (the last one shorter), on up
// to `threads` threads (0 = max_threads()). Chunks go to whichever thread asks first, so a body
// must not assume which thread runs it; thread_index() names a per-thread scratch slot. Returns
// when every chunk is done. Exceptions must not leave body.
template <class F>
void for_chunks(int64_t n, int64_t chunk, F&& body, int threads = 0) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  using Body = std::remove_reference_t<F>;
  detail::run(
      n, chunk, threads,
      [](void* ctx, int64_t b, int64_t e) { (*static_cast<Body*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

// body(i) for i in [0, n), in chunks sized so that each thread gets several (the others go on
// when one is descheduled), or all on the calling thread when `worth_threads` is false (too
// little work to pay for waking another thread).
// The same on up to `threads` threads, the count its caller was given (a kernel's Context).
template <class F>
void for_each(int64_t n, int threads, bool worth_threads, F&& body) {
  if (n <= 0) return;
  if (!worth_threads) threads = 1;
  if (threads <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, n / (8 * static_cast<int64_t>(threads)));
  for_chunks(n, chunk, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  }, threads);
}

// The same on up to max_threads() threads.
template <class F>
void for_each(int64_t n, bool worth_threads, F&& body) {
  for_each(n, max_threads(), worth_threads, std::forward<F>(body));
}

}  // namespace convnext::parallel
