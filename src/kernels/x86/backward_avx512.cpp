// AVX-512 backward-pass kernels: backward_impl.h's loops compiled 16 floats wide (LayerNorm's rows
// written out 16 lanes wide), and the GELU derivatives in registers (the activation backward
// touches every hidden value of every block).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/layer_norm_row.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

// ---- LayerNorm of training: backward_impl.h's drivers on rows 16 lanes wide ----
// The row sums (mean and variance as inference's LayerNorm takes them, layer_norm_row.h; Σ dy·γ
// and Σ dy·γ·x̂ of the backward) in 16 lanes and then across them: the plain loops' sums are one
// dependent chain of C additions (the compiler may not reorder them), 8–11% of a bf16 step.

inline float ln_train_row(const float* xr, int64_t C, const float* gamma, const float* beta, float eps, float* hr, float* yr) {
  __m512 mean, rs;
  layer_norm_stats(xr, C, eps, mean, rs);
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), mean), rs);
    _mm512_mask_storeu_ps(hr + c, m, h);
    _mm512_mask_storeu_ps(yr + c, m, _mm512_fmadd_ps(h, _mm512_maskz_loadu_ps(m, gamma + c), _mm512_maskz_loadu_ps(m, beta + c)));
  }
  return _mm512_cvtss_f32(rs);
}

inline void ln_backward_row(const float* dyr, const float* hr, int64_t C, const float* gamma, float rstd, float* g, float* accg,
                            float* accb, float* dxr) {
  __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = tail_mask(C - c);
    const __m512 d = _mm512_maskz_loadu_ps(m, dyr + c), h = _mm512_maskz_loadu_ps(m, hr + c);
    const __m512 gc = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(m, gamma + c));
    _mm512_mask_storeu_ps(g + c, m, gc);
    s1 = _mm512_add_ps(s1, gc);
    s2 = _mm512_fmadd_ps(gc, h, s2);
    _mm512_mask_storeu_ps(accg + c, m, _mm512_fmadd_ps(d, h, _mm512_maskz_loadu_ps(m, accg + c)));
    _mm512_mask_storeu_ps(accb + c, m, _mm512_add_ps(d, _mm512_maskz_loadu_ps(m, accb + c)));
  }
  const float inv_c = 1.0f / static_cast<float>(C);
  const __m512 m1 = _mm512_set1_ps(_mm512_reduce_add_ps(s1) * inv_c), m2 = _mm512_set1_ps(_mm512_reduce_add_ps(s2) * inv_c);
  const __m512 rs = _mm512_set1_ps(rstd);
  for (int64_t c = 0; c < C; c += 16) {  // dxr may alias dyr: dy's row was fully read above
    const __mmask16 m = tail_mask(C - c);
    const __m512 gc = _mm512_maskz_loadu_ps(m, g + c), h = _mm512_maskz_loadu_ps(m, hr + c);
    _mm512_mask_storeu_ps(dxr + c, m, _mm512_mul_ps(_mm512_fnmadd_ps(h, m2, _mm512_sub_ps(gc, m1)), rs));
  }
}

#define CONVNEXT_OWN_DWCONV7_WEIGHT_GRAD
#define CONVNEXT_OWN_LAYER_NORM_ROWS
#include "kernels/backward_impl.h"
#undef CONVNEXT_OWN_LAYER_NORM_ROWS
#undef CONVNEXT_OWN_DWCONV7_WEIGHT_GRAD

namespace {
// p[0..n) += v's lanes, in double (n <= 16).
inline void add_to_double(double* p, __m512 v, int64_t n) {
  const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  const __m512d b = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  if (n == 16) {  // unmasked: masked stores are slow on some cores
    _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), a));
    _mm512_storeu_pd(p + 8, _mm512_add_pd(_mm512_loadu_pd(p + 8), b));
    return;
  }
  const __mmask8 lo = static_cast<__mmask8>(n >= 8 ? 0xff : (1u << n) - 1);
  const __mmask8 hi = static_cast<__mmask8>(n >= 16 ? 0xff : n <= 8 ? 0 : (1u << (n - 8)) - 1);
  _mm512_mask_storeu_pd(p, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, p), a));
  _mm512_mask_storeu_pd(p + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, p + 8), b));
}

// One kernel row (ky) of one 16-channel block over one output row: acc[kx] = Σ_j x[j + kx − 3]·dy[j]
// (float, j in order, pixels outside the row counted as zeros), with BIAS also *bias = Σ_j dy[j].
// The 7 taps stay in registers and so do the 7 pixels of x under them: a window that takes one
// new pixel per step, so a step loads 2 vectors for its 7 FMAs (the taps loaded from memory took 8
// loads, and a pass of its own for the bias one serial chain of adds: 42 → 60 GFLOP/s on stage 1).
// w[q] holds the pixel p ≡ q (mod 7) of the window p = j − 3 .. j + 3; step S has j − 3 ≡ S.
// EDGE: j or j + 4 may lie past the row's end (then read as 0).
template <int S, bool BIAS, bool EDGE>
inline void window_step(const float* xr, const float* g, int64_t j, int64_t W, int64_t C, __mmask16 m, __m512 (&w)[7],
                        __m512 (&acc)[7], __m512& bias) {
  const __m512 gv = EDGE ? _mm512_maskz_loadu_ps(j < W ? m : 0, g + std::min(j, W - 1) * C) : _mm512_maskz_loadu_ps(m, g + j * C);
#pragma GCC unroll 7
  for (int kx = 0; kx < 7; ++kx) acc[kx] = _mm512_fmadd_ps(w[(S + kx) % 7], gv, acc[kx]);
  if constexpr (BIAS) bias = _mm512_add_ps(bias, gv);
  const int64_t next = j + 4;  // replaces pixel j − 3
  w[S] = EDGE ? _mm512_maskz_loadu_ps(next < W ? m : 0, xr + std::min(next, W - 1) * C) : _mm512_maskz_loadu_ps(m, xr + next * C);
}

template <bool BIAS, bool EDGE>
inline void window_run(const float* xr, const float* g, int64_t j, int64_t W, int64_t C, __mmask16 m, __m512 (&w)[7],
                       __m512 (&acc)[7], __m512& bias) {
  window_step<4, BIAS, EDGE>(xr, g, j, W, C, m, w, acc, bias);
  window_step<5, BIAS, EDGE>(xr, g, j + 1, W, C, m, w, acc, bias);
  window_step<6, BIAS, EDGE>(xr, g, j + 2, W, C, m, w, acc, bias);
  window_step<0, BIAS, EDGE>(xr, g, j + 3, W, C, m, w, acc, bias);
  window_step<1, BIAS, EDGE>(xr, g, j + 4, W, C, m, w, acc, bias);
  window_step<2, BIAS, EDGE>(xr, g, j + 5, W, C, m, w, acc, bias);
  window_step<3, BIAS, EDGE>(xr, g, j + 6, W, C, m, w, acc, bias);
}

// Adds one output row's products to acc (and with BIAS its dy to bias).
template <bool BIAS>
inline void tap_row(const float* xr, const float* g, int64_t W, int64_t C, __mmask16 m, __m512 (&acc)[7], __m512& bias) {
  __m512 w[7];
  for (int q = 0; q < 7; ++q)
    w[q] = q < 4 && q < W ? _mm512_maskz_loadu_ps(m, xr + q * C) : _mm512_setzero_ps();  // pixels 0..3; −3..−1 are 0
  // Steps in runs of 7 (j − 3 ≡ 4 at j = 0): the window's rotation is then fixed at compile time.
  // The runs whose pixels all lie inside the row read without checks; the rest read what lies
  // past the end as 0 (a run past the end adds zero products: ConvNeXt's widths 56, 28, 14, 7
  // have none).
  int64_t j = 0;
  for (; j + 6 + 4 < W; j += 7) window_run<BIAS, false>(xr, g, j, W, C, m, w, acc, bias);
  for (; j < W; j += 7) window_run<BIAS, true>(xr, g, j, W, C, m, w, acc, bias);
}
}  // namespace

// The depthwise weight gradient with each 16-channel block's 7 taps of one kernel row held in
// registers over the output rows of a run (the plain loop of backward_impl.h loads and stores its
// 49·C accumulators for every pixel: 10% of the FMA rate). The same sums in the same order as
// backward_impl.h: float over a run of kDwFloatRows output rows (their pixels in order), double
// across runs. Adding to the double partials once per row cost as much as the FMAs where rows
// are short (stage 4: 7 pixels, 49 FMAs per tap row against 7 conversions and adds).
void dwconv7_weight_grad(int threads, const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, float* dw49,
                         float* dbias) {
  const int64_t rows = N * H;
  const int64_t slice = dwconv7_slice(rows), slices = (rows + slice - 1) / slice, blocks = (C + 15) / 16;
  const int64_t P = 50 * C;  // 49 taps + bias
  double* const part = zeroed_partials(slices * P);
  // One unit: a slice's rows for one 16-channel block (the blocks give the threads work where
  // slices are few).
  parallel::for_chunks(slices * blocks, 1, [&](int64_t u, int64_t) {
    const int64_t s = u / blocks, c0 = (u % blocks) * 16, r1 = std::min(rows, (s + 1) * slice);
    const __mmask16 m = tail_mask(C - c0);
    const int64_t nc = std::min<int64_t>(16, C - c0);
    double* p = part + static_cast<size_t>(s) * P;
    for (int64_t f0 = s * slice; f0 < r1; f0 += kDwFloatRows) {  // one float run
      const int64_t f1 = std::min(r1, f0 + kDwFloatRows);
      for (int64_t ky = 0; ky < 7; ++ky) {
        __m512 acc[7], ab = _mm512_setzero_ps();
        for (__m512& a : acc) a = _mm512_setzero_ps();
        bool any = false;
        for (int64_t r = f0; r < f1; ++r) {
          const int64_t n = r / H, i = r % H, yy = i + ky - 3;
          if (yy < 0 || yy >= H) continue;
          any = true;
          const float* xr = x + (n * H + yy) * W * C + c0;
          if (ky == 3) tap_row<true>(xr, dy + r * W * C + c0, W, C, m, acc, ab);  // the centre row, always there: + bias
          else tap_row<false>(xr, dy + r * W * C + c0, W, C, m, acc, ab);
        }
        if (!any) continue;
        if (ky == 3) add_to_double(p + 49 * C + c0, ab, nc);
        for (int kx = 0; kx < 7; ++kx) add_to_double(p + (ky * 7 + kx) * C + c0, acc[kx], nc);
      }
    }
  }, rows * W * C > 16384 ? threads : 1);
  add_dwconv7_partials(part, slices, C, dw49, dbias);
}

namespace {
// act(x) and act'(x) of n values, 16 at a time, the activation fixed at compile time (a tile's
// rows each call this: the choice is made once per tile, not once per 16 values).
template <Activation A>
void act_grad_span(const float* x, float* y, float* d, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 a, g;
    act_and_grad16<A>(_mm512_maskz_loadu_ps(m, x + i), a, g);
    _mm512_mask_storeu_ps(y + i, m, a);
    _mm512_mask_storeu_ps(d + i, m, g);  // after x was read: d may alias x
  }
}

// The others: y as activation() computes it (gelu_tanh in registers), d one value at a time.
void act_grad_other(Activation act, const float* x, float* y, float* d, int64_t n) {
  if (y != x) std::copy(x, x + n, y);
  for (int64_t i = 0; i < n; ++i) d[i] = portable::activation_grad_scalar(act, x[i]);  // before y's activation: d may alias x
  activation(1, act, y, n);
}

using ActGradFn = void (*)(const float*, float*, float*, int64_t);
ActGradFn act_grad_fn(Activation act) {  // null: act_grad_other
  ActGradFn fn = nullptr;
  with_act_and_grad(act, [&](auto a) { fn = act_grad_span<decltype(a)::value>; });
  return fn;
}
}  // namespace

void activation_and_grad(int threads, Activation act, const float* x, float* y, float* d, int64_t n) {
  const int64_t chunks = (n + 4095) / 4096;
  const ActGradFn fn = act_grad_fn(act);
  parallel::for_each(chunks, threads, chunks > 16, [&](int64_t ch) {
    const int64_t i0 = ch * 4096, e = std::min(n, i0 + 4096);
    if (fn) fn(x + i0, y + i0, d + i0, e - i0);
    else act_grad_other(act, x + i0, y + i0, d + i0, e - i0);
  });
}

void activation_and_grad_rows(Activation act, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y, int64_t ldy,
                              float* d, int64_t ldd) {
  const ActGradFn fn = act_grad_fn(act);
  for (int64_t r = 0; r < rows; ++r) {
    if (fn) fn(x + r * ldx, y + r * ldy, d + r * ldd, cols);
    else act_grad_other(act, x + r * ldx, y + r * ldy, d + r * ldd, cols);
  }
}

// y ⊙= x over the block (and with `sums`, sums[c] += each product, in double, row by row). In
// training y is a GEMM tile just computed (in cache) and x comes from memory, a few hundred bytes
// per row at a stride of a whole row: the next rows of x are prefetched so that their loads are
// in flight while this row is multiplied.
void multiply_rows(int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx, double* sums) {
  constexpr int64_t kAhead = 4;
  for (int64_t r = 0; r < rows; ++r) {
    if (r + kAhead < rows)
      for (int64_t j = 0; j < cols; j += 16) _mm_prefetch(reinterpret_cast<const char*>(x + (r + kAhead) * ldx + j), _MM_HINT_T0);
    float* yr = y + r * ldy;
    const float* xr = x + r * ldx;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = tail_mask(cols - j);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, yr + j), _mm512_maskz_loadu_ps(m, xr + j));
      _mm512_mask_storeu_ps(yr + j, m, v);
      if (sums) add_to_double(sums + j, v, std::min<int64_t>(16, cols - j));
    }
  }
}

// torch.optim.AdamW's update in float32, 16 values at a time: the same operations in the same
// order as the portable loop, so the two give the same bits; GCC would otherwise fuse the
// intrinsics' multiplies and adds into FMAs here (this file is built with -mfma).
__attribute__((optimize("fp-contract=off"))) void adamw_update(const AdamWScalars& s, float* p, float* g, float* m, float* v, int64_t n, bool zero_g) {
  const __m512 scale = _mm512_set1_ps(s.grad_scale), w1 = _mm512_set1_ps(s.w1), b2 = _mm512_set1_ps(s.b2),
               w2 = _mm512_set1_ps(s.w2), bc2 = _mm512_set1_ps(s.bc2_sqrt), eps = _mm512_set1_ps(s.eps),
               step = _mm512_set1_ps(s.step_size), keep = _mm512_set1_ps(s.keep);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 gk = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), scale);
    const __m512 m0 = _mm512_maskz_loadu_ps(k, m + i), v0 = _mm512_maskz_loadu_ps(k, v + i);
    const __m512 mk = _mm512_add_ps(m0, _mm512_mul_ps(w1, _mm512_sub_ps(gk, m0)));
    const __m512 vk = _mm512_add_ps(_mm512_mul_ps(v0, b2), _mm512_mul_ps(_mm512_mul_ps(w2, gk), gk));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vk), bc2), eps);
    const __m512 pk = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), keep);
    _mm512_mask_storeu_ps(m + i, k, mk);
    _mm512_mask_storeu_ps(v + i, k, vk);
    _mm512_mask_storeu_ps(p + i, k, _mm512_sub_ps(pk, _mm512_mul_ps(step, _mm512_div_ps(mk, denom))));
    if (zero_g) _mm512_mask_storeu_ps(g + i, k, _mm512_setzero_ps());
  }
}

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
