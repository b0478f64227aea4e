// Vectorised exp / erf / sigmoid on 16 floats, for the activation epilogues.
#pragma once
#include <immintrin.h>

#include <type_traits>

#include "kernels/kernels.h"  // Activation

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

// e^x for x ≤ 0 where only the absolute error matters (it multiplies a small factor): 2^f on
// f = t − round(t), t = x·log2(e), by a degree-5 polynomial (relative error 2.3e-7), then
// vscalefps by round(t). Two thirds of exp16's operations; t's own rounding adds a relative
// error of about |t|·6e-8, harmless where e^x is that small.
static inline __m512 exp_nonpositive16(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-150.0f)), _mm512_set1_ps(1.44269504088896341f));
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // t − round(t)
  __m512 p = _mm512_set1_ps(1.3395285445294437e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.670767873354563e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550340667914672e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022211657983572e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472000680265e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.000000052291343f));
  return _mm512_scalef_ps(p, _mm512_sub_ps(t, f));
}

// Q(|x|) = Φ(−|x|) = ½·erfc(|x|/√2), the normal tail, with erfc from Abramowitz & Stegun 7.1.26
// (absolute error ≤ 1.5e-7 on erfc, so about 7.5e-8 on the tail); computing the tail directly
// means 1 ± erf never cancels.
// `gauss` receives e^(−x²/2), which the GELU derivative needs too.
static inline __m512 normal_tail16(__m512 ax, __m512& gauss) {
  const __m512 t = rcp16(_mm512_fmadd_ps(_mm512_set1_ps(0.3275911f * 0.70710678118654752440f), ax, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(0.5f * 1.061405429f);  // the coefficients carry erfc's factor ½
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f * -1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f * 1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f * -0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.5f * 0.254829592f));
  gauss = exp_nonpositive16(_mm512_mul_ps(_mm512_mul_ps(ax, ax), _mm512_set1_ps(-0.5f)));
  return _mm512_mul_ps(_mm512_mul_ps(p, t), gauss);
}

// Φ(x), the normal CDF: the tail for x < 0, one minus it otherwise.
static inline __m512 normal_cdf16(__m512 x, __m512& gauss) {
  const __m512 q = normal_tail16(_mm512_abs_ps(x), gauss);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0f), q), q);
}

// Exact-erf GELU, x·Φ(x), written as max(x, 0) − |x|·Φ(−|x|) (the same function: x·Φ(x) =
// x − x·Φ(−x) for x ≥ 0), which needs only the tail and no blend. This runs once per hidden
// activation in pwconv1's epilogue, so its cost shows at batch 1. |x| is capped at 16, where
// Φ(−16) ≈ 6e-58 is 0 in float, so that +inf gives +inf rather than inf·0 (min(16, NaN) keeps
// the NaN, which then propagates).
static inline __m512 gelu16(__m512 x) {
  const __m512 ax = _mm512_min_ps(_mm512_set1_ps(16.0f), _mm512_abs_ps(x));
  __m512 gauss;
  return _mm512_fnmadd_ps(ax, normal_tail16(ax, gauss), _mm512_max_ps(x, _mm512_setzero_ps()));
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

// d/dx of x·σ(βx) = σ + βx·σ(1 − σ).
static inline __m512 x_sigmoid_grad16(__m512 x, __m512 beta) {
  const __m512 bx = _mm512_mul_ps(beta, x);
  const __m512 s = rcp16(_mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), bx))));
  return _mm512_fmadd_ps(_mm512_mul_ps(bx, s), _mm512_sub_ps(_mm512_set1_ps(1.0f), s), s);
}

// a = act(v) and g = act'(v) for the activations of with_act_and_grad (A fixed at compile time).
// The exact GELU's value and derivative share one normal tail: gelu16's value and gelu_grad16's
// derivative, bit for bit.
template <Activation A>
static inline void act_and_grad16(__m512 v, __m512& a, __m512& g) {
  if constexpr (A == Activation::Gelu) {
    const __m512 ax = _mm512_min_ps(_mm512_set1_ps(16.0f), _mm512_abs_ps(v));
    __m512 gauss;
    const __m512 q = normal_tail16(ax, gauss);
    a = _mm512_fnmadd_ps(ax, q, _mm512_max_ps(v, _mm512_setzero_ps()));
    const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 cdf = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0f), q), q);
    g = _mm512_fmadd_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.39894228040143267794f)), gauss, cdf);
  } else if constexpr (A == Activation::Relu) {
    a = _mm512_max_ps(v, _mm512_setzero_ps());
    g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f));
  } else if constexpr (A == Activation::Silu) {
    a = x_sigmoid16(v, v);
    g = x_sigmoid_grad16(v, _mm512_set1_ps(1.0f));
  } else if constexpr (A == Activation::QuickGelu) {
    a = x_sigmoid16(v, _mm512_mul_ps(v, _mm512_set1_ps(1.702f)));
    g = x_sigmoid_grad16(v, _mm512_set1_ps(1.702f));
  } else {
    a = v;
    g = _mm512_set1_ps(1.0f);
  }
}

// The one list of activations act_and_grad16 computes: calls f(std::integral_constant<Activation,
// A>{}) with A = act and returns true, or returns false for the others.
template <class F>
static inline bool with_act_and_grad(Activation act, F&& f) {
  switch (act) {
    case Activation::Gelu: f(std::integral_constant<Activation, Activation::Gelu>{}); return true;
    case Activation::Relu: f(std::integral_constant<Activation, Activation::Relu>{}); return true;
    case Activation::Silu: f(std::integral_constant<Activation, Activation::Silu>{}); return true;
    case Activation::QuickGelu: f(std::integral_constant<Activation, Activation::QuickGelu>{}); return true;
    case Activation::Linear: f(std::integral_constant<Activation, Activation::Linear>{}); return true;
    default: return false;
  }
}

static inline __m512 gelu_tanh16(__m512 x) {
  // u = √(2/π)·(x + 0.044715·x³); result = x·σ(2u)
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 inner = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x2, _mm512_set1_ps(1.0f)));
  return x_sigmoid16(x, _mm512_mul_ps(_mm512_set1_ps(2.0f * 0.79788456080286535588f), inner));
}

}  // namespace convnext::kernels::x86
