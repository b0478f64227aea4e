// fp32 GEMM for the pointwise layers: C[M,N] (+)= A[M,K]·Wᵀ + b with W packed in 32-column panels.
//
// Microkernel: 12 rows × 32 columns held in 24 zmm accumulators; per k it loads two weight
// vectors and broadcasts 12 activations (folded into the FMAs), so 24 FMAs per 14 loads.
// Blocking: K in chunks of kKc (the panel chunk, kKc×32 floats = 48 KiB, stays in L1/L2 while
// the rows of A stream past it); the output in tiles of kMc rows × kNp panels, which are the
// units handed to threads.
#include <immintrin.h>

#include <algorithm>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/gemm_common.h"

namespace convnext::kernels::x86 {

namespace {

constexpr int64_t kKc = 384;

// TA: A is stored transposed (element (i, k) at A[k·lda + i]), as in dW = dYᵀ·X of the backward
// pass; the MR broadcasts of one k then come from one contiguous run.
template <int MR, bool TA = false, bool GRAD = false>
inline void micro(int64_t kc, const float* A, int64_t lda, const float* Bp, const float* bias, Activation act, float* C,
                  int64_t ldc, __mmask16 m0, __mmask16 m1, bool load_c, const char* pf, int64_t pf_rows,
                  const ActivationGradient* grad) {
  __m512 c0[MR], c1[MR];
  load_tile<MR>(c0, c1, C, ldc, m0, m1, load_c);
  const auto step = [&](int64_t k) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * kPanel);
    const __m512 b1 = _mm512_loadu_ps(Bp + k * kPanel + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(TA ? A[k * lda + i] : A[i * lda + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  };
  int64_t k = 0;
  for (; k < std::min(kc, pf_rows); ++k) {
    ChunkPrefetch::fetch_row(pf, k);
    step(k);
  }
  for (; k < kc; ++k) step(k);
  store_tile<MR, GRAD>(c0, c1, bias, act, C, ldc, m0, m1, grad);
}

using MicroFn = void (*)(int64_t, const float*, int64_t, const float*, const float*, Activation, float*, int64_t,
                         __mmask16, __mmask16, bool, const char*, int64_t, const ActivationGradient*);
constexpr MicroFn kMicro[kMr + 1] = {nullptr,   micro<1>, micro<2>, micro<3>,  micro<4>,  micro<5>, micro<6>,
                                     micro<7>,  micro<8>, micro<9>, micro<10>, micro<11>, micro<12>};
constexpr MicroFn kMicroT[kMr + 1] = {nullptr,         micro<1, true>,  micro<2, true>,  micro<3, true>, micro<4, true>,
                                      micro<5, true>,  micro<6, true>,  micro<7, true>,  micro<8, true>, micro<9, true>,
                                      micro<10, true>, micro<11, true>, micro<12, true>};
constexpr MicroFn kMicroGrad[kMr + 1] = {nullptr,          micro<1, false, true>,  micro<2, false, true>,
                                         micro<3, false, true>,  micro<4, false, true>,  micro<5, false, true>,
                                         micro<6, false, true>,  micro<7, false, true>,  micro<8, false, true>,
                                         micro<9, false, true>,  micro<10, false, true>, micro<11, false, true>,
                                         micro<12, false, true>};

template <bool TA>
void linear_impl(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act, const TileEpilogue* after = nullptr, const ActivationGradient* grad = nullptr) {
  const MicroFn* kern = TA ? kMicroT : kMicro;
  const int64_t N = W.N, K = W.K;
  if (M <= 0 || N <= 0) return;
  const TilePlan plan = plan_tiles(M, N, threads, std::min(K, kKc));
  const int64_t tiles = plan.tiles();
  const Activation reg_act = act_in_registers(act) ? act : Activation::Linear;
  parallel::for_chunks(tiles, 1, [&](int64_t t, int64_t) {
    const int64_t m0 = (t / plan.ntiles) * plan.mc, m1 = std::min(M, m0 + plan.mc);
    const int64_t p0 = (t % plan.ntiles) * plan.np, p1 = std::min(plan.panels, p0 + plan.np);
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      const bool first = k0 == 0, last = k0 + kKc >= K;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
        const float* Bp = W.panels.data() + (p * K + k0) * kPanel;
        const float* bias = last ? W.bias.data() + n0 : nullptr;
        ChunkPrefetch pf(W.panels.data(), plan, K, kKc, t, tiles, parallel::team_size(), p, p0, p1, k0, kc,
                         (m1 - m0 + kMr - 1) / kMr);
        for_each_row_run(m0, m1, [&](int64_t m, int rows) {
          int64_t pf_rows;
          const char* pf_at = pf.slice(pf_rows);
          prefetch_next_output(C, ldc, m, rows, m0, m1, n0, std::min(N, p1 * kPanel), last ? grad : nullptr);
          ActivationGradient run;
          const ActivationGradient* g = run_gradient(grad, last, m, n0, run);
          (g ? kMicroGrad : kern)[rows](kc, TA ? A + k0 * lda + m : A + m * lda + k0, lda, Bp, bias, reg_act, C + m * ldc + n0,
                                        ldc, mask_lo(nc), mask_hi(nc), accumulate || !first, pf_at, pf_rows, g);
        });
      }
      if (K == 0) break;
    }
    finish_tile(act, after, C, ldc, m0, m1, p0 * kPanel, std::min(N, p1 * kPanel));
  }, tiles > 1 && M * N * K > 32768 ? threads : 1);
}

}  // namespace

void linear(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act, const TileEpilogue* after) {
  linear_impl<false>(threads, M, A, lda, W, C, ldc, accumulate, act, after);
}

bool act_and_grad_in_registers(Activation a) {
  return with_act_and_grad(a, [](auto) {});
}

void linear(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, Activation act,
            const TileEpilogue* after, const ActivationGradient& grad) {
  linear_impl<false>(threads, M, A, lda, W, C, ldc, false, act, after, &grad);
}

void linear_at(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate) {
  linear_impl<true>(threads, M, A, lda, W, C, ldc, accumulate, Activation::Linear);
}


// ---- Weight gradients (the driver: wgrad::run in gemm_common.h) --------------------------------

namespace {

// dy rows [m0, m0+kc), columns [n0, n1) → for each row run (n, rows) of for_each_row_run, the
// run's kc × rows values at out + (n − n0)·kc, k-major: the microkernel's broadcasts of one k
// are then adjacent.
void pack_dy(const float* dy, int64_t ldy, int64_t m0, int64_t kc, int64_t n0, int64_t n1, float* out) {
  for_each_row_run(n0, n1, [&](int64_t n, int rows) {
    float* dst = out + (n - n0) * kc;
    const __mmask16 m = static_cast<__mmask16>((1u << rows) - 1);
    for (int64_t k = 0; k < kc; ++k)
      _mm512_mask_storeu_ps(dst + k * rows, m, _mm512_maskz_loadu_ps(m, dy + (m0 + k) * ldy + n));
  });
}

// x rows [m0, m0+kc), columns [c0, c0 + width) → np panels of kc rows of 32 (zero past width),
// row by row (x is read in order).
void pack_x(const float* x, int64_t ldx, int64_t m0, int64_t kc, int64_t c0, int64_t width, int64_t np, float* out) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = x + (m0 + k) * ldx + c0;
    for (int64_t p = 0; p < np; ++p) {
      const int64_t nc = std::min(kPanel, width - p * kPanel);
      float* dst = out + (p * kc + k) * kPanel;
      _mm512_store_ps(dst, _mm512_maskz_loadu_ps(mask_lo(nc), src + p * kPanel));
      _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(mask_hi(nc), src + p * kPanel + 16));
    }
  }
}

}  // namespace

void weight_gradient(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx, int64_t K,
                     float* dW) {
  const wgrad::Operands ops{dy, ldy, x, ldx, 1, true};
  wgrad::run(threads, M, N, K, dW, ops, [&](const wgrad::Block& b, uint32_t* abuf, uint32_t* bbuf) {
    pack_dy(dy, ldy, b.m0, b.kc, b.n0, b.n1, reinterpret_cast<float*>(abuf));
    pack_x(x, ldx, b.m0, b.kc, b.c0, b.width, b.np, reinterpret_cast<float*>(bbuf));
  }, [&](int rows, int64_t kc, const uint32_t* a, int64_t lda, const uint32_t* bp, float* C, int64_t ldc, __mmask16 lo,
         __mmask16 hi, bool load_c, const char* pf, int64_t pf_rows) {
    kMicroT[rows](kc, reinterpret_cast<const float*>(a), lda, reinterpret_cast<const float*>(bp), nullptr, Activation::Linear, C,
                  ldc, lo, hi, load_c, pf, pf_rows, nullptr);
  });
}

}  // namespace convnext::kernels::x86
