// fp32 GEMM for the pointwise layers: C[M,N] (+)= A[M,K]·Wᵀ + b with W packed in 32-column panels.
//
// Microkernel: 12 rows × 32 columns held in 24 zmm accumulators; per k it loads two weight
// vectors and broadcasts 12 activations (folded into the FMAs), so 24 FMAs per 14 loads.
// Blocking: K in chunks of kKc (the panel chunk, kKc×32 floats = 48 KiB, stays in L1/L2 while
// the rows of A stream past it); the output in tiles of kMc rows × kNp panels, which are the
// units handed to threads.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

namespace {

constexpr int kMr = 12;
constexpr int64_t kKc = 384;
constexpr int64_t kMc = 96;  // 8 microkernel rows
constexpr int64_t kNp = 4;   // panels (128 columns) per tile

template <int MR>
inline void micro(int64_t kc, const float* A, int64_t lda, const float* Bp, const float* bias, float* C, int64_t ldc,
                  __mmask16 m0, __mmask16 m1, bool load_c) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    if (load_c) {
      c0[i] = _mm512_maskz_loadu_ps(m0, C + i * ldc);
      c1[i] = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);
    } else {
      c0[i] = _mm512_setzero_ps();
      c1[i] = _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * kPanel);
    const __m512 b1 = _mm512_loadu_ps(Bp + k * kPanel + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * lda + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
  if (bias) {
    const __m512 bb0 = _mm512_loadu_ps(bias), bb1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm512_add_ps(c0[i], bb0);
      c1[i] = _mm512_add_ps(c1[i], bb1);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, const float*, const float*, float*, int64_t, __mmask16,
                         __mmask16, bool);
constexpr MicroFn kMicro[kMr + 1] = {nullptr,   micro<1>, micro<2>, micro<3>,  micro<4>,  micro<5>, micro<6>,
                                     micro<7>,  micro<8>, micro<9>, micro<10>, micro<11>, micro<12>};

}  // namespace

void linear(int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act) {
  const int64_t N = W.N, K = W.K;
  if (M <= 0 || N <= 0) return;
  const int64_t panels = (N + kPanel - 1) / kPanel;
  // Output tiles: kMc rows (a small M in one tile) × np panels, with np lowered until there are
  // enough tiles for every thread to get several (the late stages at batch 1 have few pixels).
  const int64_t mtiles = (M + kMc - 1) / kMc, mc = (M + mtiles - 1) / mtiles;  // 196 rows: 3 × 66, not 96+96+4
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  int64_t np = kNp;
  while (np > 1 && mtiles * ((panels + np - 1) / np) < 6 * threads) np /= 2;
  const int64_t ntiles = (panels + np - 1) / np;
  const int64_t tiles = mtiles * ntiles;
#pragma omp parallel for schedule(dynamic, 1) if (tiles > 1 && M * N * K > 32768)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t tm = t / ntiles, tn = t % ntiles;
    const int64_t m0 = tm * mc, m1 = std::min(M, m0 + mc);
    const int64_t p0 = tn * np, p1 = std::min(panels, p0 + np);
    // Rows split evenly over microkernel calls (49 = 10+10+10+10+9, not 12+12+12+12+1): each
    // call streams the weight panel once, so a 1-row call would cost as much as a 12-row one.
    const int64_t calls = (m1 - m0 + kMr - 1) / kMr;
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      const bool first = k0 == 0, last = k0 + kKc >= K;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
        const __mmask16 mk0 = static_cast<__mmask16>(nc >= 16 ? 0xffff : (1u << nc) - 1);
        const __mmask16 mk1 = static_cast<__mmask16>(nc >= 32 ? 0xffff : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
        const float* Bp = W.panels.data() + (p * K + k0) * kPanel;
        const float* bias = last ? W.bias.data() + n0 : nullptr;
        for (int64_t c = 0, m = m0; c < calls; ++c) {
          const int mr = static_cast<int>((m1 - m) / (calls - c) + ((m1 - m) % (calls - c) ? 1 : 0));
          kMicro[mr](kc, A + m * lda + k0, lda, Bp, bias, C + m * ldc + n0, ldc, mk0, mk1, accumulate || !first);
          m += mr;
        }
      }
      if (K == 0) break;
    }
    if (act != Activation::Linear) {
      const int64_t n0 = p0 * kPanel, n1 = std::min(N, p1 * kPanel);
      for (int64_t m = m0; m < m1; ++m) activation(act, C + m * ldc + n0, n1 - n0);
    }
  }
}

}  // namespace convnext::kernels::x86
