// AVX-512 LayerNorm, depthwise 7×7 and activations on NHWC data.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/layer_norm_row.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {


// Serial: callers (the dispatcher, the GEMM epilogue) own the threads.
void activation(int /*threads*/, Activation act, float* x, int64_t n) {
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
  __m512 vm, rstd;
  layer_norm_stats(xr, C, eps, vm, rstd);
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), vm), rstd);
    if (gamma) d = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, gamma + c));
    if (beta) d = _mm512_add_ps(d, _mm512_maskz_loadu_ps(m, beta + c));
    _mm512_mask_storeu_ps(yr + c, m, d);
  }
}
}  // namespace

void layer_norm(int threads, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y) {
  parallel::for_each(rows, threads, rows * C > 16384, [&](int64_t r) {
    ln_row(x + r * C, C, gamma, beta, eps, y + r * C);
  });
}

// B consecutive outputs (columns j0 … j0+B−1) of one output row of the depthwise 7×7, for one
// block of 16 channels. The B accumulators stay in registers for the whole 7×7 window: each input
// pixel of the B+6 the block sees is loaded once per kernel row and feeds up to 7 outputs, so a
// kernel row costs 7 weight loads and B+6 input loads for 7·B FMAs. Input columns outside the
// image are skipped (zero padding); the loops unroll completely, so the output index of every FMA
// is a constant and the accumulators are registers.
template <int B>
inline void dw_block(const float* x, int64_t i, int64_t W, int64_t C, int64_t ky0, int64_t ky1, int64_t j0,
                     const float* w49, __m512 b, __mmask16 m, float* yrow, bool accumulate) {
  __m512 acc[B];
#pragma GCC unroll 16
  for (int j = 0; j < B; ++j) acc[j] = accumulate ? _mm512_add_ps(b, _mm512_maskz_loadu_ps(m, yrow + (j0 + j) * C)) : b;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float* row = x + (i + ky - 3) * W * C;  // x points at the image's channel block c
    const float* wk = w49 + ky * 7 * C;
    __m512 wv[7];
#pragma GCC unroll 7
    for (int kx = 0; kx < 7; ++kx) wv[kx] = _mm512_maskz_loadu_ps(m, wk + kx * C);
#pragma GCC unroll 22
    for (int q = 0; q < B + 6; ++q) {
      const int64_t xx = j0 - 3 + q;
      if (xx < 0 || xx >= W) continue;
      const __m512 in = _mm512_maskz_loadu_ps(m, row + xx * C);
#pragma GCC unroll 7
      for (int kx = 0; kx < 7; ++kx) {
        const int j = q - kx;  // output j0 + j reads input j0 + j + kx − 3
        if (j >= 0 && j < B) acc[j] = _mm512_fmadd_ps(in, wv[kx], acc[j]);
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < B; ++j) _mm512_mask_storeu_ps(yrow + (j0 + j) * C, m, acc[j]);
}

using DwBlockFn = void (*)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const float*, __m512,
                           __mmask16, float*, bool);
constexpr int kDwB = 14;  // outputs per block: 14 accumulators + 7 weights + 1 input in 32 registers
constexpr DwBlockFn kDwBlock[kDwB + 1] = {nullptr,      dw_block<1>,  dw_block<2>,  dw_block<3>, dw_block<4>,
                                          dw_block<5>,  dw_block<6>,  dw_block<7>,  dw_block<8>, dw_block<9>,
                                          dw_block<10>, dw_block<11>, dw_block<12>, dw_block<13>, dw_block<14>};

// One output row (n, i) of the depthwise 7×7: the row in blocks of up to 14 outputs, as even as
// possible (56 = 4 × 14, 61 = 13 + 4 × 12), for every block of 16 channels.
static void dw_row(const float* x, int64_t H, int64_t W, int64_t C, int64_t i, const float* w49, const float* bias,
                   float* yrow, bool accumulate = false) {
  const int64_t ky0 = std::max<int64_t>(0, 3 - i), ky1 = std::min<int64_t>(7, H + 3 - i);
  const int64_t blocks = (W + kDwB - 1) / kDwB;
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c) : _mm512_setzero_ps();
    for (int64_t k = 0, j0 = 0; k < blocks; ++k) {
      const int64_t rest = W - j0, left = blocks - k, n = rest / left + (rest % left ? 1 : 0);
      kDwBlock[n](x + c, i, W, C, ky0, ky1, j0, w49 + c, b, m, yrow + c, accumulate);
      j0 += n;
    }
  }
}

void dwconv7_ln_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                     float eps, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / H, i = r % H;
    float* out = y + (r - r0) * W * C;
    dw_row(x + n * H * W * C, H, W, C, i, w49, bias, out);
    for (int64_t j = 0; j < W; ++j) ln_row(out + j * C, C, nullptr, nullptr, eps, out + j * C);
  }
}

void dwconv7_ln_train_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                           const float* gamma, const float* beta, float eps, int64_t r0, int64_t r1, float* y, float* xhat,
                           float* rstd) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / H, i = r % H, o = (r - r0) * W;
    dw_row(x + n * H * W * C, H, W, C, i, w49, bias, xhat + o * C);
    layer_norm_train(1, xhat + o * C, W, C, gamma, beta, eps, y + o * C, xhat + o * C, rstd + o);
  }
}

void dwconv7_ln(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y) {
  parallel::for_each(N * H, threads, N * H * W * C > 16384, [&](int64_t r) {
    dwconv7_ln_rows(x, N, H, W, C, w49, bias, eps, r, r + 1, y + r * W * C);
  });
}

void dwconv7(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y,
             bool accumulate) {
  parallel::for_each(N * H, threads, N * H * W * C > 16384, [&](int64_t r) {
    const int64_t n = r / H, i = r % H;
    dw_row(x + n * H * W * C, H, W, C, i, w49, bias, y + r * W * C, accumulate);
  });
}

}  // namespace convnext::kernels::x86
