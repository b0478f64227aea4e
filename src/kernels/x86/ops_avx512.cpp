// AVX-512 LayerNorm, depthwise 7×7 and activations on NHWC data.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

namespace {
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1); }
}  // namespace

// Serial: callers (the dispatcher, the GEMM epilogue) own the threads.
void activation(Activation act, float* x, int64_t n) {
  if (act == Activation::Linear) return;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 r;
    switch (act) {
      case Activation::Gelu: r = gelu16(v); break;
      case Activation::GeluTanh: r = gelu_tanh16(v); break;
      case Activation::Relu: r = _mm512_max_ps(v, _mm512_setzero_ps()); break;
      case Activation::Silu: r = x_sigmoid16(v, v); break;
      case Activation::QuickGelu: r = x_sigmoid16(v, _mm512_mul_ps(v, _mm512_set1_ps(1.702f))); break;
      default: {
        const int64_t e = std::min<int64_t>(n, i + 16);
        for (int64_t j = i; j < e; ++j) x[j] = portable::activation_scalar(act, x[j]);
        continue;
      }
    }
    _mm512_mask_storeu_ps(x + i, m, r);
  }
}

namespace {
// One row: y = (x − mean) / sqrt(var + eps) · gamma + beta, two passes over C.
inline void ln_row(const float* xr, int64_t C, const float* gamma, const float* beta, float eps, float* yr) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(C - c), xr + c));
  const float mean = _mm512_reduce_add_ps(s) / static_cast<float>(C);
  const __m512 vm = _mm512_set1_ps(mean);
  __m512 v = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + c), vm);
    v = _mm512_fmadd_ps(d, d, v);
  }
  const float var = _mm512_reduce_add_ps(v) / static_cast<float>(C);
  const __m512 rstd = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), vm), rstd);
    if (gamma) d = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, gamma + c));
    if (beta) d = _mm512_add_ps(d, _mm512_maskz_loadu_ps(m, beta + c));
    _mm512_mask_storeu_ps(yr + c, m, d);
  }
}
}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * C > 16384)
  for (int64_t r = 0; r < rows; ++r) ln_row(x + r * C, C, gamma, beta, eps, y + r * C);
}

// One output row (n, i) of the depthwise 7×7. Blocks of 4 output pixels share each weight
// vector; blocks whose 10-pixel input window lies inside the row skip the bounds checks.
static void dw_row(const float* x, int64_t H, int64_t W, int64_t C, int64_t i, const float* w49, const float* bias,
                   float* yrow) {
  const int64_t ky0 = std::max<int64_t>(0, 3 - i), ky1 = std::min<int64_t>(7, H + 3 - i);
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c) : _mm512_setzero_ps();
    int64_t j = 0;
    for (; j < W; j += 4) {
      const bool interior = j >= 3 && j + 3 + 3 < W;
      __m512 a0 = b, a1 = b, a2 = b, a3 = b;
      for (int64_t ky = ky0; ky < ky1; ++ky) {
        const float* row = x + (i + ky - 3) * W * C + c;
        const float* wk = w49 + ky * 7 * C + c;
        if (interior) {
          const float* p = row + (j - 3) * C;
          __m512 in0 = _mm512_maskz_loadu_ps(m, p), in1 = _mm512_maskz_loadu_ps(m, p + C),
                 in2 = _mm512_maskz_loadu_ps(m, p + 2 * C);
#pragma GCC unroll 7
          for (int kx = 0; kx < 7; ++kx) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, wk + kx * C);
            const __m512 in3 = _mm512_maskz_loadu_ps(m, p + (kx + 3) * C);
            a0 = _mm512_fmadd_ps(in0, wv, a0);
            a1 = _mm512_fmadd_ps(in1, wv, a1);
            a2 = _mm512_fmadd_ps(in2, wv, a2);
            a3 = _mm512_fmadd_ps(in3, wv, a3);
            in0 = in1;
            in1 = in2;
            in2 = in3;
          }
        } else {
          for (int kx = 0; kx < 7; ++kx) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, wk + kx * C);
            __m512* acc[4] = {&a0, &a1, &a2, &a3};
            for (int jj = 0; jj < 4; ++jj) {
              const int64_t xx = j + jj + kx - 3;
              if (j + jj >= W || xx < 0 || xx >= W) continue;
              *acc[jj] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, row + xx * C), wv, *acc[jj]);
            }
          }
        }
      }
      const __m512 outs[4] = {a0, a1, a2, a3};
      for (int jj = 0; jj < 4 && j + jj < W; ++jj) _mm512_mask_storeu_ps(yrow + (j + jj) * C + c, m, outs[jj]);
    }
  }
}

void dwconv7_ln(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y) {
#pragma omp parallel for schedule(static) if (N * H * W * C > 16384)
  for (int64_t r = 0; r < N * H; ++r) {
    const int64_t n = r / H, i = r % H;
    float* out = y + r * W * C;
    dw_row(x + n * H * W * C, H, W, C, i, w49, bias, out);
    for (int64_t j = 0; j < W; ++j) ln_row(out + j * C, C, nullptr, nullptr, eps, out + j * C);
  }
}

void dwconv7(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y) {
#pragma omp parallel for schedule(static) if (N * H * W * C > 16384)
  for (int64_t r = 0; r < N * H; ++r) {
    const int64_t n = r / H, i = r % H;
    dw_row(x + n * H * W * C, H, W, C, i, w49, bias, y + r * W * C);
  }
}

}  // namespace convnext::kernels::x86
