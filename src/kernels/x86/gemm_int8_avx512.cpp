// int8 GEMM for the pointwise layers (AVX512_VNNI): C[M,N] (+)= act(A[M,K]·Wᵀ + b) with W packed
// as signed bytes per output column (pack_linear_int8) and each row of A quantized to unsigned
// bytes on the fly (QuantRow). vpdpbusd multiplies four u8·s8 pairs and adds them to an int32
// lane: 64 multiply-adds per instruction against 16 for an fp32 FMA.
//
// Same tiling as the fp32 and bf16 kernels (12 rows × 32 columns in 24 accumulators, tiles of
// rows × panels handed to threads). Each tile first quantizes its rows of A into a thread-local
// buffer (kept while the thread's next tile shares the rows), then runs the whole K per
// microkernel call: an int32 sum cannot be resumed from a float C, and a panel's K/4 rows of 128
// bytes (96 KiB at K = 3072) stream from L2 at a fraction of its bandwidth. The epilogue
// dequantizes: C = (acc − zero_a·colsum_w) · (scale_a·scale_w) + b, then the activation.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/gemm_common.h"

namespace convnext::kernels::x86 {

namespace {

struct RowQ {
  float scale;
  int32_t zero;
};

template <int MR>
void micro(int64_t k4, const uint8_t* A, int64_t lda, const RowQ* rq, const int8_t* Bp, const float* wscale,
           const int32_t* colsum, const float* bias, Activation act, float* C, int64_t ldc, __mmask16 m0, __mmask16 m1,
           bool load_c, const char* pf, int64_t pf_rows) {
  __m512i c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
  const auto step = [&](int64_t kk) {
    const __m512i b0 = _mm512_loadu_si512(Bp + kk * kPanel * 4);
    const __m512i b1 = _mm512_loadu_si512(Bp + kk * kPanel * 4 + 64);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      int32_t quad;
      __builtin_memcpy(&quad, A + i * lda + kk * 4, 4);
      const __m512i a = _mm512_set1_epi32(quad);
      c0[i] = _mm512_dpbusd_epi32(c0[i], a, b0);
      c1[i] = _mm512_dpbusd_epi32(c1[i], a, b1);
    }
  };
  int64_t kk = 0;
  for (; kk < std::min(k4, pf_rows); ++kk) {
    ChunkPrefetch::fetch_row(pf, kk);
    step(kk);
  }
  for (; kk < k4; ++kk) step(kk);
  // Dequantize into the fp32 accumulators the shared epilogue takes.
  const __m512i cs0 = _mm512_loadu_si512(colsum), cs1 = _mm512_loadu_si512(colsum + 16);
  const __m512 ws0 = _mm512_loadu_ps(wscale), ws1 = _mm512_loadu_ps(wscale + 16);
  const __m512 bb0 = _mm512_loadu_ps(bias), bb1 = _mm512_loadu_ps(bias + 16);
  __m512 f0[MR], f1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    const __m512i z = _mm512_set1_epi32(rq[i].zero);
    const __m512 sa = _mm512_set1_ps(rq[i].scale);
    const __m512 v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c0[i], _mm512_mullo_epi32(z, cs0)));
    const __m512 v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c1[i], _mm512_mullo_epi32(z, cs1)));
    f0[i] = _mm512_fmadd_ps(v0, _mm512_mul_ps(sa, ws0), bb0);
    f1[i] = _mm512_fmadd_ps(v1, _mm512_mul_ps(sa, ws1), bb1);
    if (act != Activation::Linear) {
      f0[i] = apply_act(act, f0[i]);
      f1[i] = apply_act(act, f1[i]);
    }
    if (load_c) {
      f0[i] = _mm512_add_ps(f0[i], _mm512_maskz_loadu_ps(m0, C + i * ldc));
      f1[i] = _mm512_add_ps(f1[i], _mm512_maskz_loadu_ps(m1, C + i * ldc + 16));
    }
    _mm512_mask_storeu_ps(C + i * ldc, m0, f0[i]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, f1[i]);
  }
}

using MicroFn = void (*)(int64_t, const uint8_t*, int64_t, const RowQ*, const int8_t*, const float*, const int32_t*,
                         const float*, Activation, float*, int64_t, __mmask16, __mmask16, bool, const char*, int64_t);
constexpr MicroFn kMicro[kMr + 1] = {nullptr,   micro<1>, micro<2>, micro<3>,  micro<4>,  micro<5>, micro<6>,
                                     micro<7>,  micro<8>, micro<9>, micro<10>, micro<11>, micro<12>};

float hmin(__m512 v) { return _mm512_reduce_min_ps(v); }
float hmax(__m512 v) { return _mm512_reduce_max_ps(v); }

// One row of A (K floats) → K4·4 bytes (the tail zero: its weights are zero too), with its
// QuantRow as kernels::quant_params gives it (the same float operations as the reference).
RowQ quantize_row(const float* a, int64_t K, int64_t K4, uint8_t* out) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(a + k);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, a + k);  // masked lanes read 0, inside [lo, hi] anyway
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  const QuantRow q = quant_params(hmin(lo), hmax(hi));
  const __m512 inv = _mm512_set1_ps(q.inv);
  const __m512i zero = _mm512_set1_epi32(q.zero);
  const __m512i bottom = _mm512_setzero_si512();
  // cvtps_epi32 rounds to nearest even (MXCSR's default), as std::nearbyint does; the clamp to
  // [0, 255] is a max with 0 and vpmovusdb's unsigned saturation.
  const auto q16 = [&](__m512 v) {
    return _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero), bottom));
  };
  for (k = 0; k + 16 <= K; k += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), q16(_mm512_loadu_ps(a + k)));
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    _mm_mask_storeu_epi8(out + k, m, q16(_mm512_maskz_loadu_ps(m, a + k)));
  }
  for (k = K; k < K4 * 4; ++k) out[k] = 0;
  return {q.scale, q.zero};
}

}  // namespace

void linear_int8(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act) {
  const int64_t N = W.N, K = W.K, K4 = (K + 3) / 4;
  if (M <= 0 || N <= 0) return;
  const TilePlan plan = plan_tiles(M, N, threads, 0);
  const int64_t tiles = plan.tiles();
  const Activation reg_act = act_in_registers(act) ? act : Activation::Linear;
  static std::atomic<uint64_t> calls{0};  // each call's number, for ConvertedRows
  const uint64_t call = calls.fetch_add(1, std::memory_order_relaxed) + 1;
  parallel::for_chunks(tiles, 1, [&](int64_t t, int64_t) {
    // The tile's rows of A quantized (bytes), and each row's scale and zero point.
    static thread_local ConvertedRows<uint8_t> rows_u8;
    static thread_local std::vector<RowQ> qbuf;
    const int64_t tm = t / plan.ntiles;
    const int64_t m0 = tm * plan.mc, m1 = std::min(M, m0 + plan.mc);
    const int64_t p0 = (t % plan.ntiles) * plan.np, p1 = std::min(plan.panels, p0 + plan.np);
    if (qbuf.size() < static_cast<size_t>(plan.mc)) qbuf.resize(static_cast<size_t>(plan.mc));
    if (rows_u8.stale(call, tm, static_cast<size_t>(plan.mc * K4 * 4)))
      for (int64_t m = m0; m < m1; ++m) qbuf[m - m0] = quantize_row(A + m * lda, K, K4, rows_u8.data.data() + (m - m0) * K4 * 4);
    const uint8_t* abuf = rows_u8.data.data();
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
      const int8_t* Bp = W.panels_s8.data() + p * K4 * kPanel * 4;
      ChunkPrefetch pf(W.panels_s8.data(), plan, K4, K4, t, tiles, parallel::team_size(), p, p0, p1, 0, K4,
                       (m1 - m0 + kMr - 1) / kMr);
      for_each_row_run(m0, m1, [&](int64_t m, int rows) {
        int64_t pf_rows;
        const char* pf_at = pf.slice(pf_rows);
        kMicro[rows](K4, abuf + (m - m0) * K4 * 4, K4 * 4, qbuf.data() + (m - m0), Bp, W.scale_s8.data() + n0,
                     W.colsum_s8.data() + n0, W.bias.data() + n0, reg_act, C + m * ldc + n0, ldc, mask_lo(nc), mask_hi(nc),
                     accumulate, pf_at, pf_rows);
      });
    }
    finish_tile(act, nullptr, C, ldc, m0, m1, p0 * kPanel, std::min(N, p1 * kPanel));
  }, tiles > 1 && M * N * K > 32768 ? threads : 1);
}

}  // namespace convnext::kernels::x86
