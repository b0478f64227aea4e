// One row's LayerNorm statistics on AVX-512, shared by inference's LayerNorm (ops_avx512.cpp) and
// training's (backward_avx512.cpp), so that both normalise a row to the same floats. For the
// AVX-512 translation units only.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace convnext::kernels::x86 {

inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1); }

// The mean of a row of C floats and 1/sqrt(var + eps) (biased variance, two passes), each sum in
// 16 lanes and then across them, broadcast.
inline void layer_norm_stats(const float* xr, int64_t C, float eps, __m512& mean, __m512& rstd) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(C - c), xr + c));
  mean = _mm512_set1_ps(_mm512_reduce_add_ps(s) / static_cast<float>(C));
  __m512 v = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + c), mean);
    v = _mm512_fmadd_ps(d, d, v);
  }
  const float var = _mm512_reduce_add_ps(v) / static_cast<float>(C);
  rstd = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
}

}  // namespace convnext::kernels::x86
