// Peak-FLOPS probe: independent AVX-512 FMAs (fp32) and vdpbf16ps (bf16) in registers, on 1
// thread and on every core, to give the machine limit the GEMMs are compared against.
//   g++ -O2 -mavx512f -mavx512bf16 -fopenmp bench/peak_flops.cpp -o peak_flops && ./peak_flops
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <initializer_list>

template <bool BF16>
static double run(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.0f);
  const __m512 a = _mm512_set1_ps(1e-8f), b = _mm512_set1_ps(0.999f);
  const __m512bh ab = (__m512bh)_mm512_set1_epi16(0x3f80), bb = (__m512bh)_mm512_set1_epi16(0x3f80);
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) {
      if constexpr (BF16) acc[i] = _mm512_dpbf16_ps(acc[i], ab, bb);
      else acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm512_reduce_add_ps(acc[i]);
  if (sink == 12345.0f) std::puts("");
  // fp32 FMA: 16 lanes × 2 flops; vdpbf16ps: 16 lanes × 2 products × 2 flops.
  return static_cast<double>(iters) * 12 * (BF16 ? 64 : 32) / s / 1e9;
}

int main() {
  const long iters = 200000000;
  for (int threads : {1, omp_get_max_threads()}) {
    double f32 = 0, bf16 = 0;
#pragma omp parallel num_threads(threads) reduction(+ : f32, bf16)
    {
      f32 += run<false>(iters / 4);
      bf16 += run<true>(iters / 4);
    }
    std::printf("%d thread(s): fp32 FMA %.0f GFLOP/s, bf16 dot %.0f GFLOP/s\n", threads, f32, bf16);
  }
}
