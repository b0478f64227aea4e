// bf16 GEMM for the pointwise layers (AVX512_BF16): C[M,N] (+)= A[M,K]·Wᵀ + b with W stored as
// bfloat16 pairs and A rounded to bfloat16 on the fly; vdpbf16ps multiplies pairs and
// accumulates in fp32, at twice the rate of fp32 FMAs. Same tiling and epilogue as the fp32
// kernel (gemm_avx512.cpp): 12 rows × 32 columns in 24 accumulators, tiles handed to threads.
// Each tile first converts its rows of A to bf16 pairs (round to nearest even) into a
// thread-local buffer, so the conversion costs K per row, not K per row and panel.
#include <immintrin.h>
#include <atomic>

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/bf16_maps.h"
#include "kernels/x86/gemm_common.h"

namespace convnext::kernels::x86 {

namespace {

constexpr int64_t kKc2 = 256;  // k-pairs per block: 256 × 32 × 2 bf16 = 32 KiB of panel

// The epilogue of a microkernel whose output is kept in bf16 (training's act(h) between pwconv1 and
// pwconv2, which round it to bf16 anyway): + bias, then act and act' in registers, C rounded to
// nearest even as the consumers' conversion would round it, act' in fp32.
//
// Whole rows of the tile at 64-byte boundaries go out as non-temporal stores: these maps (tens of
// megabytes, read back a layer later) would otherwise cost a read of every line before its write;
// stage 1's pwconv1 at batch 8 writes 58 MB of them. gemm_pairs fences each thread's tiles.
inline bool at_line(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 63) == 0; }
// 32 values (v0's 16, then v1's) rounded to bf16 into p: one non-temporal 64-byte store when
// `stream` (p at a line, both masks whole), else masked stores.
inline void store_bf16x32(uint16_t* p, __m512 v0, __m512 v1, bool stream, __mmask16 m0, __mmask16 m1) {
  if (stream) return _mm512_stream_si512(reinterpret_cast<__m512i*>(p), (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
  _mm256_mask_storeu_epi16(p, m0, (__m256i)_mm512_cvtneps_pbh(v0));
  _mm256_mask_storeu_epi16(p + 16, m1, (__m256i)_mm512_cvtneps_pbh(v1));
}
template <int MR>
inline void store_tile_bf16_out(__m512 (&c0)[MR], __m512 (&c1)[MR], const float* bias, Activation act, uint16_t* C, int64_t ldc,
                                __mmask16 m0, __mmask16 m1, const ActivationGradient* grad) {
  add_bias<MR>(c0, c1, bias);
  const bool whole = m0 == 0xffff && m1 == 0xffff;
  with_act_and_grad(act, [&](auto k) {
    constexpr Activation A = decltype(k)::value;
    for (int i = 0; i < MR; ++i) {
      __m512 a0, g0, a1, g1;
      act_and_grad16<A>(c0[i], a0, g0);
      act_and_grad16<A>(c1[i], a1, g1);
      uint16_t* c = C + i * ldc;
      const int64_t at = i * grad->ldd;
      const bool stream = whole && at_line(c) && at_line(grad->d16 ? static_cast<void*>(grad->d16 + at) : grad->d + at);
      store_bf16x32(c, a0, a1, stream, m0, m1);
      if (grad->d16) {  // act' in bf16 too
        store_bf16x32(grad->d16 + at, g0, g1, stream, m0, m1);
      } else if (stream) {
        _mm512_stream_ps(grad->d + at, g0);
        _mm512_stream_ps(grad->d + at + 16, g1);
      } else {
        _mm512_mask_storeu_ps(grad->d + at, m0, g0);
        _mm512_mask_storeu_ps(grad->d + at + 16, m1, g1);
      }
    }
  });
}

// TA: A's pairs stored transposed (pair (i, kk) at A[kk·lda2 + i]), as in dW = dYᵀ·X of the
// backward pass; the MR broadcasts of one kk then come from one contiguous run. Out: float, or
// uint16_t for a bf16 output (GRAD, one K block: nothing to load).
template <int MR, bool TA = false, bool GRAD = false, class Out = float>
void micro(int64_t k2, const uint32_t* A, int64_t lda2, const uint16_t* Bp, const float* bias, Activation act, Out* C,
           int64_t ldc, __mmask16 m0, __mmask16 m1, bool load_c, const char* pf, int64_t pf_rows, const ActivationGradient* grad) {
  __m512 c0[MR], c1[MR];
  if constexpr (std::is_same_v<Out, float>) load_tile<MR>(c0, c1, C, ldc, m0, m1, load_c);
  else for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  const auto step = [&](int64_t kk) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + kk * kPanel * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + kk * kPanel * 2 + 32);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(TA ? A[kk * lda2 + i] : A[i * lda2 + kk]));
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
  };
  int64_t kk = 0;
  for (; kk < std::min(k2, pf_rows); ++kk) {
    ChunkPrefetch::fetch_row(pf, kk);
    step(kk);
  }
  for (; kk < k2; ++kk) step(kk);
  if constexpr (std::is_same_v<Out, float>) store_tile<MR, GRAD>(c0, c1, bias, act, C, ldc, m0, m1, grad);
  else store_tile_bf16_out<MR>(c0, c1, bias, act, C, ldc, m0, m1, grad);
}

template <class Out>
using MicroFn = void (*)(int64_t, const uint32_t*, int64_t, const uint16_t*, const float*, Activation, Out*, int64_t,
                         __mmask16, __mmask16, bool, const char*, int64_t, const ActivationGradient*);
// The microkernels of 1 … kMr rows (index 0 unused).
template <bool TA, bool GRAD, class Out, size_t... I>
constexpr std::array<MicroFn<Out>, kMr + 1> micro_table(std::index_sequence<I...>) {
  return {nullptr, micro<static_cast<int>(I) + 1, TA, GRAD, Out>...};
}
constexpr auto kMicro = micro_table<false, false, float>(std::make_index_sequence<kMr>{});
constexpr auto kMicroT = micro_table<true, false, float>(std::make_index_sequence<kMr>{});
constexpr auto kMicroGrad = micro_table<false, true, float>(std::make_index_sequence<kMr>{});
constexpr auto kMicroBf16Out = micro_table<false, true, uint16_t>(std::make_index_sequence<kMr>{});

// Rows of A (fp32) → bf16 pairs, zero padded to K2 pairs.
void convert_rows(const float* A, int64_t lda, int64_t rows, int64_t K, int64_t K2, uint32_t* out) {
  for (int64_t r = 0; r < rows; ++r) bf16_pairs(A + r * lda, K, out + r * K2);
}

// The tiled product over pairs already in bf16: `rows_of(row_tile, m0, m1, lda2)` gives the A of
// rows m0..m1−1 (row tile `row_tile`) and its stride in pairs; TA as for micro. With a bf16
// output (Out = uint16_t: `grad` given, act in registers, no `after`) K is one block, so that no
// partial sum goes through C.
// With `consume` (Out = float, act Linear, no `after`, no `grad`), C and ldc are ignored: each tile
// is computed into a buffer of its thread and handed over (kernels::linear_tiles).
template <bool TA, class Out, class RowsOf>
void gemm_pairs(int threads, int64_t M, const PackedLinear& W, Out* C, int64_t ldc, bool accumulate, Activation act,
                const TileEpilogue* after, const ActivationGradient* grad, RowsOf&& rows_of,
                const TileConsumer* consume = nullptr) {
  constexpr bool kOut16 = std::is_same_v<Out, uint16_t>;
  const int64_t N = W.N, K2 = (W.K + 1) / 2, kb = kOut16 ? std::max<int64_t>(K2, 1) : kKc2;
  const auto& kern = TA ? kMicroT : kMicro;
  const TilePlan plan = plan_tiles(M, N, threads, std::min(K2, kb));
  const int64_t tiles = plan.tiles();
  const Activation reg_act = act_in_registers(act) ? act : Activation::Linear;
  parallel::for_chunks(tiles, 1, [&](int64_t t, int64_t) {
    const int64_t m0 = (t / plan.ntiles) * plan.mc, m1 = std::min(M, m0 + plan.mc);
    const int64_t p0 = (t % plan.ntiles) * plan.np, p1 = std::min(plan.panels, p0 + plan.np);
    int64_t lda2 = 0;
    const uint32_t* abuf = rows_of(t / plan.ntiles, m0, m1, lda2);
    // Where the tile's values go: element (m, n) at out + (m − om)·ldo + (n − on).
    Out* out = C;
    int64_t ldo = ldc, om = 0, on = 0;
    if (consume) {
      static thread_local AlignedVector<Out> tile;
      ldo = (p1 - p0) * kPanel;
      if (tile.size() < static_cast<size_t>((m1 - m0) * ldo)) tile.resize(static_cast<size_t>((m1 - m0) * ldo));
      out = tile.data(), om = m0, on = p0 * kPanel;
    }
    for (int64_t k0 = 0; k0 < K2 || k0 == 0; k0 += kb) {
      const int64_t kc = std::min(kb, K2 - k0);
      const bool first = k0 == 0, last = k0 + kb >= K2;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
        const uint16_t* Bp = W.panels_bf16.data() + (p * K2 + k0) * kPanel * 2;
        const float* bias = last ? W.bias.data() + n0 : nullptr;
        ChunkPrefetch pf(W.panels_bf16.data(), plan, K2, kb, t, tiles, parallel::team_size(), p, p0, p1, k0, kc,
                         (m1 - m0 + kMr - 1) / kMr);
        for_each_row_run(m0, m1, [&](int64_t m, int rows) {
          int64_t pf_rows;
          const char* pf_at = pf.slice(pf_rows);
          // (A tile buffer stays in cache: no stores to wait for there.)
          // (A bf16 output is streamed past the caches: nothing to fetch.)
          if (!consume && !kOut16) prefetch_next_output(C, ldc, m, rows, m0, m1, n0, std::min(N, p1 * kPanel), last ? grad : nullptr);
          const uint32_t* a = TA ? abuf + k0 * lda2 + (m - m0) : abuf + (m - m0) * lda2 + k0;
          ActivationGradient run;
          const ActivationGradient* g = run_gradient(grad, last, m, n0, run);
          Out* c = out + (m - om) * ldo + (n0 - on);
          if constexpr (kOut16)
            kMicroBf16Out[rows](kc, a, lda2, Bp, bias, act, c, ldo, mask_lo(nc), mask_hi(nc), false, pf_at, pf_rows, g);
          else
            (g ? kMicroGrad : kern)[rows](kc, a, lda2, Bp, bias, reg_act, c, ldo, mask_lo(nc), mask_hi(nc),
                                          accumulate || !first, pf_at, pf_rows, g);
        });
      }
      if (K2 == 0) break;
    }
    if constexpr (!kOut16) {
      if (consume) (*consume)(OutputTile{m0, m1, p0 * kPanel, std::min(N, p1 * kPanel), out, ldo});
      else finish_tile(act, after, C, ldc, m0, m1, p0 * kPanel, std::min(N, p1 * kPanel));
    } else {
      _mm_sfence();  // the tile's non-temporal stores, ordered before the call returns
    }
  }, tiles > 1 && M * N * W.K > 32768 ? threads : 1);
}

// The row tiles' A converted to pairs in the calling thread's buffer (ConvertedRows: once per
// call and row tile), for gemm_pairs.
struct ConvertRows {
  const float* A;
  int64_t lda, K;
  uint64_t call;
  const uint32_t* operator()(int64_t row_tile, int64_t m0, int64_t m1, int64_t& lda2) const {
    static thread_local ConvertedRows<uint32_t> rows_bf16;
    const int64_t K2 = (K + 1) / 2;
    if (rows_bf16.stale(call, row_tile, static_cast<size_t>((m1 - m0) * K2)))
      convert_rows(A + m0 * lda, lda, m1 - m0, K, K2, rows_bf16.data.data());
    lda2 = K2;
    return rows_bf16.data.data();
  }
};
uint64_t next_call() {
  static std::atomic<uint64_t> calls{0};  // each call's number, for ConvertedRows
  return calls.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

namespace {
void linear_bf16_impl(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
                      bool accumulate, Activation act, const TileEpilogue* after, const ActivationGradient* grad) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, C, ldc, accumulate, act, after, grad, ConvertRows{A, lda, W.K, next_call()});
}
}  // namespace

void linear_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act, const TileEpilogue* after) {
  linear_bf16_impl(threads, M, A, lda, W, C, ldc, accumulate, act, after, nullptr);
}

void linear_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, Activation act,
                 const TileEpilogue* after, const ActivationGradient& grad) {
  linear_bf16_impl(threads, M, A, lda, W, C, ldc, false, act, after, &grad);
}

void linear_bf16_out(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, C, ldc, false, act, nullptr, &grad, ConvertRows{A, lda, W.K, next_call()});
}

void linear_bf16_tiles(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, static_cast<float*>(nullptr), 0, false, Activation::Linear, nullptr, nullptr,
                    ConvertRows{A, lda, W.K, next_call()}, &consume);
}

namespace {
// A's rows already the k pairs the microkernel multiplies (bf16, lda even): no conversion, no copy.
struct PairRows {
  const uint32_t* pairs;
  int64_t lda2;
  const uint32_t* operator()(int64_t, int64_t m0, int64_t, int64_t& ld) const {
    ld = lda2;
    return pairs + m0 * lda2;
  }
};
PairRows pair_rows(const uint16_t* A, int64_t lda) { return {reinterpret_cast<const uint32_t*>(A), lda / 2}; }
}  // namespace

void linear_bf16(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
                 bool accumulate, Activation act, const TileEpilogue* after) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, C, ldc, accumulate, act, after, nullptr, pair_rows(A, lda));
}

void linear_bf16_out(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, C, ldc, false, act, nullptr, &grad, pair_rows(A, lda));
}

void linear_bf16_tiles(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume) {
  if (M <= 0 || W.N <= 0) return;
  gemm_pairs<false>(threads, M, W, static_cast<float*>(nullptr), 0, false, Activation::Linear, nullptr, nullptr,
                    pair_rows(A, lda), &consume);
}

namespace {
// Aᵀ's rows (k) in pairs, converted once for every tile: pair (i, kk) = (A[2kk][i], A[2kk+1][i]);
// A in fp32 (rounded here) or already in bf16. The buffer belongs to the calling thread; the team
// only reads it.
template <class T>
void linear_at_pairs(int threads, int64_t M, const T* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                     bool accumulate) {
  const int64_t K = B.K, K2 = (K + 1) / 2;
  if (M <= 0 || B.N <= 0) return;
  static thread_local AlignedVector<uint32_t> pairs;
  if (pairs.size() < static_cast<size_t>(K2 * M)) pairs.resize(static_cast<size_t>(K2 * M));
  uint32_t* out = pairs.data();
  parallel::for_each(K2, threads, K2 * M > 65536, [&](int64_t kk) {
    interleave_bf16(A + 2 * kk * lda, 2 * kk + 1 < K ? A + (2 * kk + 1) * lda : nullptr, M, out + kk * M);
  });
  gemm_pairs<true>(threads, M, B, C, ldc, accumulate, Activation::Linear, nullptr, nullptr, [&](int64_t, int64_t m0, int64_t, int64_t& lda2) {
    lda2 = M;
    return static_cast<const uint32_t*>(out + m0);
  });
}
}  // namespace

void linear_at_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                    bool accumulate) {
  linear_at_pairs(threads, M, A, lda, B, C, ldc, accumulate);
}
void linear_at_bf16(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                    bool accumulate) {
  linear_at_pairs(threads, M, A, lda, B, C, ldc, accumulate);
}

namespace {
// The k pairs of two rows, value j of r0 in the low half of pair j and of r1 in the high half:
// of 16 floats each (rounded to nearest even) …
inline __m512i pairs_of(__m512 r0, __m512 r1) {
  // cvtne2ps_pbh puts its second operand's 16 values in the low half, the first's in the high
  // half; the permutation then pairs value j of r0 with value j of r1.
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
                                         4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, (__m512i)_mm512_cvtne2ps_pbh(r1, r0));
}
// … and of 32 bf16 values each: pairs 0-15 in lo, 16-31 in hi (lanes 0-15 of r0 with 32-47, r1's
// 0-15, then 16-31 with 48-63).
inline void pairs_of(__m512i r0, __m512i r1, __m512i& lo, __m512i& hi) {
  const __m512i first = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36,
                                         4, 35, 3, 34, 2, 33, 1, 32, 0);
  lo = _mm512_permutex2var_epi16(r0, first, r1);
  hi = _mm512_permutex2var_epi16(r0, _mm512_add_epi16(first, _mm512_set1_epi16(16)), r1);
}

// interleave_bf16 of nc ≤ 32 values into a panel's 32 pairs, zero past nc, inline: the weight
// gradient's panel-sized pieces (a call per panel and pair row cost more than the work).
[[gnu::always_inline]] inline void interleave32(const uint16_t* r0, const uint16_t* r1, int64_t nc, uint32_t* d) {
  const __mmask32 m = nc >= 32 ? 0xffffffffu : (1u << nc) - 1;
  __m512i lo, hi;
  pairs_of(_mm512_maskz_loadu_epi16(m, r0), r1 ? _mm512_maskz_loadu_epi16(m, r1) : _mm512_setzero_si512(), lo, hi);
  _mm512_storeu_si512(d, lo);
  _mm512_storeu_si512(d + 16, hi);
}
[[gnu::always_inline]] inline void interleave32(const float* r0, const float* r1, int64_t nc, uint32_t* d) {
  for (int h = 0; h < 2; ++h) {
    const __mmask16 m = mask_lo(std::max<int64_t>(0, nc - 16 * h));
    const __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1 + 16 * h) : _mm512_setzero_ps();
    _mm512_storeu_si512(d + 16 * h, pairs_of(_mm512_maskz_loadu_ps(m, r0 + 16 * h), b));
  }
}

// The weight gradient's driver on dy and x of element types DY and X: float (rounded to bf16 in
// the pack) or uint16_t (a map kept in bf16: interleaved as it is).
template <class DY, class X>
void weight_gradient_pairs(int threads, int64_t M, const DY* dy, int64_t ldy, int64_t N, const X* x, int64_t ldx, int64_t K,
                           float* dW) {
  const wgrad::Operands ops{dy, ldy, x, ldx, 2, false, static_cast<int>(sizeof(X)), static_cast<int>(sizeof(DY))};
  wgrad::run(threads, M, N, K, dW, ops, [&](const wgrad::Block& b, uint32_t* abuf, uint32_t* bbuf) {
    const int64_t k2 = (b.kc + 1) / 2;
    const auto row = [&](const auto* base, int64_t ld, int64_t kk, int64_t half) {
      return 2 * kk + half < b.kc ? base + (b.m0 + 2 * kk + half) * ld : nullptr;
    };
    for (int64_t kk = 0; kk < k2; ++kk) {  // dy's pair rows
      const DY* r1 = row(dy, ldy, kk, 1);
      interleave_bf16(row(dy, ldy, kk, 0) + b.n0, r1 ? r1 + b.n0 : nullptr, b.n1 - b.n0, abuf + kk * b.lda);
    }
    for (int64_t kk = 0; kk < k2; ++kk) {  // x's panels
      const X *r0 = row(x, ldx, kk, 0) + b.c0, *r1 = row(x, ldx, kk, 1);
      for (int64_t p = 0; p < b.np; ++p)
        interleave32(r0 + p * kPanel, r1 ? r1 + b.c0 + p * kPanel : nullptr, std::min(kPanel, b.width - p * kPanel),
                     bbuf + (p * k2 + kk) * kPanel);
    }
  }, [&](int rows, int64_t k2, const uint32_t* a, int64_t lda, const uint32_t* bp, float* C, int64_t ldc, __mmask16 lo,
         __mmask16 hi, bool load_c, const char* pf, int64_t pf_rows) {
    kMicroT[rows](k2, a, lda, reinterpret_cast<const uint16_t*>(bp), nullptr, Activation::Linear, C, ldc, lo, hi, load_c, pf,
                  pf_rows, nullptr);
  });
}
}  // namespace

// The weight gradient in bf16 pairs of pixels (the driver: wgrad::run in gemm_common.h). Pair kk
// of a block is pixels m0 + 2kk and m0 + 2kk + 1 (the second zero past the block's end).
void weight_gradient_bf16(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                          int64_t K, float* dW) {
  weight_gradient_pairs(threads, M, dy, ldy, N, x, ldx, K, dW);
}
void weight_gradient_bf16(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                          int64_t K, float* dW) {
  weight_gradient_pairs(threads, M, dy, ldy, N, x, ldx, K, dW);
}
void weight_gradient_bf16(int threads, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                          int64_t K, float* dW) {
  weight_gradient_pairs(threads, M, dy, ldy, N, x, ldx, K, dW);
}
void weight_gradient_bf16(int threads, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                          int64_t K, float* dW) {
  weight_gradient_pairs(threads, M, dy, ldy, N, x, ldx, K, dW);
}

void bf16_pairs(const float* a, int64_t K, uint32_t* out) {
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + k + 16), _mm512_loadu_ps(a + k));
    _mm512_storeu_si512(out + k / 2, (__m512i)v);
  }
  if (k < K) {
    const int64_t rest = K - k;
    const __mmask16 lo = static_cast<__mmask16>(rest >= 16 ? 0xffff : (1u << rest) - 1);
    const __mmask16 hi = static_cast<__mmask16>(rest >= 32 ? 0xffff : rest <= 16 ? 0 : (1u << (rest - 16)) - 1);
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, a + k + 16), _mm512_maskz_loadu_ps(lo, a + k));
    const int64_t pairs = (rest + 1) / 2;
    _mm512_mask_storeu_epi32(out + k / 2, static_cast<__mmask16>(pairs >= 16 ? 0xffff : (1u << pairs) - 1), (__m512i)v);
  }
}

void interleave_bf16(const float* r0, const float* r1, int64_t n, uint32_t* out) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = mask_lo(n - j);
    const __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(out + j, m, pairs_of(_mm512_maskz_loadu_ps(m, r0 + j), b));
  }
}

void round_to_bf16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask_lo(n - i);
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

namespace {
inline __m512 load_widened(__mmask16 m, const float* x) { return _mm512_maskz_loadu_ps(m, x); }
inline __m512 load_widened(__mmask16 m, const uint16_t* x) {  // bf16 → fp32: the bits moved up 16 (exact)
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x)), 16));
}

template <class X>
void multiply_rows_to_bf16_impl(int64_t rows, int64_t cols, const float* y, int64_t ldy, const X* x, int64_t ldx, uint16_t* out,
                                int64_t ldo, double* sums) {
  // Strips of 64 columns walked down the rows, their sums in registers: each column still adds
  // its rows in order, in double, from the value in `sums` (multiply_rows' bits), without a load
  // and store of the sums per row; x, read from memory, is prefetched a few rows ahead.
  // A whole strip's row (128 bytes of bf16) at a 64-byte boundary is streamed out past the caches
  // (non-temporal), as pwconv1's bf16 output (store_tile_bf16_out): dh is read a GEMM later.
  constexpr int64_t kStrip = 64, kAhead = 6;
  bool streamed = false;
  for (int64_t j0 = 0; j0 < cols; j0 += kStrip) {
    __mmask16 m[4];
    __mmask8 lo[4], hi[4];
    for (int b = 0; b < 4; ++b) {
      const int64_t left = std::clamp<int64_t>(cols - j0 - 16 * b, 0, 16);
      m[b] = static_cast<__mmask16>((1u << left) - 1);
      lo[b] = static_cast<__mmask8>(m[b] & 0xff);
      hi[b] = static_cast<__mmask8>(m[b] >> 8);
    }
    __m512d s[8];
    for (int b = 0; b < 4; ++b) {
      s[2 * b] = sums ? _mm512_maskz_loadu_pd(lo[b], sums + j0 + 16 * b) : _mm512_setzero_pd();
      s[2 * b + 1] = sums ? _mm512_maskz_loadu_pd(hi[b], sums + j0 + 16 * b + 8) : _mm512_setzero_pd();
    }
    const bool whole = m[3] == 0xffff;
    for (int64_t r = 0; r < rows; ++r) {
      if (r + kAhead < rows)
        for (int b = 0; b < 4; b += 1)
          if (m[b]) _mm_prefetch(reinterpret_cast<const char*>(x + (r + kAhead) * ldx + j0 + 16 * b), _MM_HINT_T0);
      __m512 v[4];
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        const int64_t j = j0 + 16 * b;
        v[b] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[b], y + r * ldy + j), load_widened(m[b], x + r * ldx + j));
        s[2 * b] = _mm512_add_pd(s[2 * b], _mm512_cvtps_pd(_mm512_castps512_ps256(v[b])));
        s[2 * b + 1] = _mm512_add_pd(s[2 * b + 1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[b]), 1))));
      }
      uint16_t* o = out + r * ldo + j0;
      const bool stream = whole && at_line(o);
      streamed |= stream;
      store_bf16x32(o, v[0], v[1], stream, m[0], m[1]);
      store_bf16x32(o + 32, v[2], v[3], stream, m[2], m[3]);
    }
    if (sums)
      for (int b = 0; b < 4; ++b) {
        _mm512_mask_storeu_pd(sums + j0 + 16 * b, lo[b], s[2 * b]);
        _mm512_mask_storeu_pd(sums + j0 + 16 * b + 8, hi[b], s[2 * b + 1]);
      }
  }
  if (streamed) _mm_sfence();
}
}  // namespace

void multiply_rows_to_bf16(int64_t rows, int64_t cols, const float* y, int64_t ldy, const float* x, int64_t ldx, uint16_t* out,
                           int64_t ldo, double* sums) {
  multiply_rows_to_bf16_impl(rows, cols, y, ldy, x, ldx, out, ldo, sums);
}
void multiply_rows_to_bf16(int64_t rows, int64_t cols, const float* y, int64_t ldy, const uint16_t* x, int64_t ldx,
                           uint16_t* out, int64_t ldo, double* sums) {
  multiply_rows_to_bf16_impl(rows, cols, y, ldy, x, ldx, out, ldo, sums);
}

void interleave_bf16(const uint16_t* r0, const uint16_t* r1, int64_t n, uint32_t* out) {
  for (int64_t j = 0; j < n; j += 32) {
    const int64_t left = std::min<int64_t>(32, n - j);
    const __mmask32 m = left >= 32 ? 0xffffffffu : (1u << left) - 1;
    __m512i lo, hi;
    pairs_of(_mm512_maskz_loadu_epi16(m, r0 + j), r1 ? _mm512_maskz_loadu_epi16(m, r1 + j) : _mm512_setzero_si512(), lo, hi);
    _mm512_mask_storeu_epi32(out + j, mask_lo(left), lo);
    if (left > 16) _mm512_mask_storeu_epi32(out + j + 16, mask_lo(left - 16), hi);
  }
}

}  // namespace convnext::kernels::x86
