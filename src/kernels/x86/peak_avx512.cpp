// The machine's fp32 limit, measured: independent AVX-512 FMAs in registers on every thread of the
// call (12 chains, more than latency × ports), so that a kernel's GFLOP/s can be given as a share
// of what the cores really do under the current load and clock (bench --profile).
#include <immintrin.h>

#include <atomic>
#include <chrono>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace convnext::kernels::x86 {

namespace {
// `iters` rounds of 12 FMAs on 16 lanes; returns a value that depends on all of them.
float fma_rounds(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.0f);
  const __m512 a = _mm512_set1_ps(1e-8f), b = _mm512_set1_ps(0.999f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
  }
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm512_reduce_add_ps(acc[i]);
  return sink;
}
}  // namespace

double fp32_peak_gflops(int threads) {
  constexpr int64_t kIters = 4'000'000;  // 1.5 GFLOP per thread: about 20 ms on a recent core
  fma_rounds(kIters / 8);                 // wakes the cores up to their AVX-512 clock
  std::atomic<int> sink{0};
  const auto t0 = std::chrono::steady_clock::now();
  parallel::for_chunks(threads, 1, [&](int64_t, int64_t) { sink += fma_rounds(kIters) == 1.0f; }, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(threads) * static_cast<double>(kIters) * 12 * 32 / s / 1e9 + 0.0 * sink;
}

}  // namespace convnext::kernels::x86
