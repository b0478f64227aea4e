// Vectorised exp / erf / sigmoid on 16 floats, for the activation epilogues.
#pragma once
#include <immintrin.h>

namespace convnext::kernels::x86 {

// e^x, Cephes polynomial on the reduced argument, 2^n applied with vscalefps (handles underflow).
// Relative error about 1 ulp on [-87, 88].
static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-103.0f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 1/d to about 23 bits: the 14-bit estimate plus one Newton step, a third of a division's cost.
static inline __m512 rcp16(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// Φ(x) = 0.5·(1 + erf(x/√2)), the normal CDF, with erf from Abramowitz & Stegun 7.1.26
// (|error| ≤ 1.5e-7) written as erfc for the negative side so that 1 + erf(z) never cancels.
// `gauss` receives e^(−x²/2), which the GELU derivative needs too.
static inline __m512 normal_cdf16(__m512 x, __m512& gauss) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 t = rcp16(_mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  gauss = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
  const __m512 q = _mm512_mul_ps(p, gauss);  // erfc(|z|)
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 one_plus_erf = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), q), q);
  return _mm512_mul_ps(_mm512_set1_ps(0.5f), one_plus_erf);
}

// Exact-erf GELU: x·Φ(x).
static inline __m512 gelu16(__m512 x) {
  __m512 gauss;
  return _mm512_mul_ps(x, normal_cdf16(x, gauss));
}

// GELU's derivative: Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
static inline __m512 gelu_grad16(__m512 x) {
  __m512 gauss;
  const __m512 cdf = normal_cdf16(x, gauss);
  return _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.39894228040143267794f)), gauss, cdf);
}

// x·σ(βx) = x / (1 + e^(−βx)): silu (β=1), quick_gelu (β=1.702) and the tanh GELU
// (0.5·x·(1+tanh(u)) = x·σ(2u)).
static inline __m512 x_sigmoid16(__m512 x, __m512 bx) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), bx));
  return _mm512_mul_ps(x, rcp16(_mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

static inline __m512 gelu_tanh16(__m512 x) {
  // u = √(2/π)·(x + 0.044715·x³); result = x·σ(2u)
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 inner = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x2, _mm512_set1_ps(1.0f)));
  return x_sigmoid16(x, _mm512_mul_ps(_mm512_set1_ps(2.0f * 0.79788456080286535588f), inner));
}

}  // namespace convnext::kernels::x86
