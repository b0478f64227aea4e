// AVX-512 backward-pass kernels: backward_impl.h's loops compiled 16 floats wide, and the GELU
// derivatives in registers (the activation backward touches every hidden value of every block).
#include <immintrin.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

#include "kernels/backward_impl.h"

namespace {
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1); }

// Φ(x) + x·φ(x) with Φ from the same erfc form as gelu16 (|error| ~1e-7).
inline __m512 gelu_grad16(__m512 x) {
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 t = rcp16(_mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));  // e^(−x²/2)
  const __m512 q = _mm512_mul_ps(_mm512_mul_ps(p, t), e);                             // erfc(|z|)
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 cdf = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), q), q));
  return _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.39894228040143267794f)), e, cdf);
}

// d/dx of x·σ(βx) = σ + βx·σ(1 − σ).
inline __m512 x_sigmoid_grad16(__m512 x, __m512 beta) {
  const __m512 bx = _mm512_mul_ps(beta, x);
  const __m512 s = rcp16(_mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), bx))));
  return _mm512_fmadd_ps(_mm512_mul_ps(bx, s), _mm512_sub_ps(_mm512_set1_ps(1.0f), s), s);
}
}  // namespace

void activation_backward(Activation act, const float* h, const float* dy, float* dx, int64_t n) {
  const bool vec = act == Activation::Gelu || act == Activation::Relu || act == Activation::Silu ||
                   act == Activation::QuickGelu || act == Activation::Linear;
  if (!vec) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * portable::activation_grad_scalar(act, h[i]);
    return;
  }
  const int64_t chunks = (n + 4095) / 4096;
#pragma omp parallel for schedule(static) if (chunks > 16)
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int64_t i = ch * 4096, e = std::min(n, i + 4096); i < e; i += 16) {
      const __mmask16 m = tail_mask(e - i);
      const __m512 x = _mm512_maskz_loadu_ps(m, h + i), g = _mm512_maskz_loadu_ps(m, dy + i);
      __m512 d;
      switch (act) {
        case Activation::Gelu: d = gelu_grad16(x); break;
        case Activation::Relu:
          d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f));
          break;
        case Activation::Silu: d = x_sigmoid_grad16(x, _mm512_set1_ps(1.0f)); break;
        case Activation::QuickGelu: d = x_sigmoid_grad16(x, _mm512_set1_ps(1.702f)); break;
        default: d = _mm512_set1_ps(1.0f); break;
      }
      _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(g, d));
    }
}

void layer_norm_train(const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps,
                      float* y, float* xhat, float* rstd) {
  layer_norm_train_impl(x, rows, C, gamma, beta, eps, y, xhat, rstd);
}
void layer_norm_backward(const float* dy, const float* xhat, const float* rstd, int64_t rows, int64_t C,
                         const float* gamma, float* dx, float* dgamma, float* dbeta) {
  layer_norm_backward_impl(dy, xhat, rstd, rows, C, gamma, dx, dgamma, dbeta);
}
void dwconv7_weight_grad(const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, float* dw49,
                         float* dbias) {
  dwconv7_weight_grad_impl(x, dy, N, H, W, C, dw49, dbias);
}
void column_sums(const float* x, int64_t rows, int64_t C, float* out) { column_sums_impl(x, rows, C, out); }

}  // namespace convnext::kernels::x86
