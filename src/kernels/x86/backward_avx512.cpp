// AVX-512 backward-pass kernels: backward_impl.h's loops compiled 16 floats wide, and the GELU
// derivatives in registers (the activation backward touches every hidden value of every block).
#include <immintrin.h>


#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

#include "kernels/backward_impl.h"

namespace {
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1); }

// d/dx of x·σ(βx) = σ + βx·σ(1 − σ).
inline __m512 x_sigmoid_grad16(__m512 x, __m512 beta) {
  const __m512 bx = _mm512_mul_ps(beta, x);
  const __m512 s = rcp16(_mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), bx))));
  return _mm512_fmadd_ps(_mm512_mul_ps(bx, s), _mm512_sub_ps(_mm512_set1_ps(1.0f), s), s);
}
}  // namespace

void activation_backward(int threads, Activation act, const float* h, const float* dy, float* dx, int64_t n) {
  const bool vec = act == Activation::Gelu || act == Activation::Relu || act == Activation::Silu ||
                   act == Activation::QuickGelu || act == Activation::Linear;
  if (!vec) {
    parallel::for_each(n, threads, n > 65536, [&](int64_t i) {
      dx[i] = dy[i] * portable::activation_grad_scalar(act, h[i]);
    });
    return;
  }
  const int64_t chunks = (n + 4095) / 4096;
  parallel::for_each(chunks, threads, chunks > 16, [&](int64_t ch) {
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
  });
}


}  // namespace convnext::kernels::x86
