// Pieces the fp32 and bf16 GEMMs share: how the output is cut into tiles for the threads, how a
// tile's rows are shared between microkernel calls, and the epilogue that adds the bias and
// stores a 32-column strip under masks.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"

namespace convnext::kernels::x86 {

constexpr int kMr = 12;       // rows per microkernel call (24 accumulators)
constexpr int64_t kMc = 128;  // rows per tile at most
constexpr int64_t kNp = 4;    // 32-column panels per tile at most, in the int8 GEMM
// fp32 and bf16: as many panels per tile as keep one K block of them (kblock_rows packed rows of
// 128 bytes each) within L2's 1 MiB. The tile's rows of A are then read (and, in bf16, converted)
// once for that many columns: ConvNeXt-T's training steps ran 5–8% (fp32) and 5–13% (bf16) faster
// than with 4 panels, stage 1 (K = 96) forward 15% (bench --train --profile, alternated runs).
constexpr int64_t kPanelBlockBytes = 1 << 20;

// Output tiles: up to kMc rows (rows shared evenly: 196 = 2 × 98, not 128+68) × np panels, np
// lowered until every thread gets several tiles (the late stages at batch 1 have few rows).
struct TilePlan {
  int64_t panels, mtiles, mc, np, ntiles;
  int64_t tiles() const { return mtiles * ntiles; }
};

// kblock_rows: the packed rows (128 bytes each) of a panel in one K block; 0: kNp panels.
inline TilePlan plan_tiles(int64_t M, int64_t N, int threads, int64_t kblock_rows) {
  TilePlan t;
  t.panels = (N + kPanel - 1) / kPanel;
  t.mtiles = (M + kMc - 1) / kMc;
  t.mc = (M + t.mtiles - 1) / t.mtiles;
  t.np = kblock_rows > 0 ? std::max<int64_t>(1, kPanelBlockBytes / (kblock_rows * 128)) : kNp;
  while (t.np > 1 && t.mtiles * ((t.panels + t.np - 1) / t.np) < 6 * threads) t.np /= 2;
  t.ntiles = (t.panels + t.np - 1) / t.np;
  return t;
}

// Software prefetch of the weights a tile needs next, so that they arrive in L2 while the current
// chunk is computed: the late stages' weights do not fit the caches and would otherwise come at
// DRAM latency (stage 4 of ConvNeXt-T at batch 1: about 4.3 → 3.8 ms). Both GEMMs pack a panel
// as K rows of 128 bytes (32 floats, or 32 bf16 pairs), so chunks are counted in those rows.
// The next chunk is the tile's next panel, else its first panel's next K block, else the first
// chunk of the tile this thread will likely take next (t + threads; a guess under dynamic
// scheduling, and a wrong guess costs only bandwidth). Each microkernel call fetches one slice.
class ChunkPrefetch {
 public:
  // panels: the packed weights; Kx: rows per panel; kb: rows per K block; the chunk now computed
  // is panel p (of the tile's p0..p1), K block k0 (kc rows), computed in `calls` microkernel calls.
  ChunkPrefetch(const void* panels, const TilePlan& plan, int64_t Kx, int64_t kb, int64_t t, int64_t tiles, int threads,
                int64_t p, int64_t p0, int64_t p1, int64_t k0, int64_t kc, int64_t calls) {
    int64_t start = 0;
    if (p + 1 < p1) start = (p + 1) * Kx + k0, rows_ = kc;
    else if (k0 + kb < Kx) start = p0 * Kx + k0 + kb, rows_ = std::min(kb, Kx - k0 - kb);
    else if (t + threads < tiles) start = ((t + threads) % plan.ntiles) * plan.np * Kx, rows_ = std::min(kb, Kx);
    base_ = static_cast<const char*>(panels) + start * kRowBytes;
    slice_ = (rows_ + calls - 1) / calls;
  }
  // The next call's slice: rows [first, first + count) of the next chunk.
  const char* slice(int64_t& count) {
    const int64_t first = std::min(rows_, call_ * slice_);
    count = std::min(rows_, first + slice_) - first;
    ++call_;
    return base_ + first * kRowBytes;
  }
  static void fetch_row(const char* rows, int64_t k) {
    _mm_prefetch(rows + k * kRowBytes, _MM_HINT_T1);
    _mm_prefetch(rows + k * kRowBytes + 64, _MM_HINT_T1);
  }

 private:
  static constexpr int64_t kRowBytes = 128;
  const char* base_ = nullptr;
  int64_t rows_ = 0, slice_ = 0, call_ = 0;
};

// Masks for the two 16-column halves of a panel with nc valid columns.
inline __mmask16 mask_lo(int64_t nc) { return static_cast<__mmask16>(nc >= 16 ? 0xffff : (1u << nc) - 1); }
inline __mmask16 mask_hi(int64_t nc) {
  return static_cast<__mmask16>(nc >= 32 ? 0xffff : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
}

// Calls f(m, rows) for consecutive runs of at most kMr rows covering [m0, m1), as even as possible:
// each call streams the weight panel once, so 49 rows go as 10+10+10+10+9, not 12+12+12+12+1.
template <typename F>
inline void for_each_row_run(int64_t m0, int64_t m1, F&& f) {
  const int64_t calls = (m1 - m0 + kMr - 1) / kMr;
  for (int64_t c = 0, m = m0; c < calls; ++c) {
    const int64_t rest = m1 - m, left = calls - c;
    const int rows = static_cast<int>(rest / left + (rest % left ? 1 : 0));
    f(m, rows);
    m += rows;
  }
}

// A thread's converted copy (bf16 pairs, int8) of its tile's rows of A, kept from call to call (no
// allocation per GEMM) and converted again only when the call or the tile's rows change: a thread's
// consecutive tiles often share their rows, which are then converted once. `call` is the GEMM
// call's number (each kernel counts its calls), `tile` the row tile.
template <class T>
struct ConvertedRows {
  std::vector<T> data;
  uint64_t call = 0;
  int64_t tile = -1;
  // Sizes the buffer to n; true when the rows must be converted (again).
  bool stale(uint64_t c, int64_t t, size_t n) {
    if (data.size() < n) data.resize(n);
    if (call == c && tile == t) return false;
    call = c;
    tile = t;
    return true;
  }
};

// Activations the epilogue applies in registers; the others run as a pass over the finished tile.
inline bool act_in_registers(Activation a) {
  return a == Activation::Linear || a == Activation::Gelu || a == Activation::GeluTanh || a == Activation::Relu ||
         a == Activation::Silu || a == Activation::QuickGelu;
}

// What follows a finished tile (rows m0..m1, columns n0..n1 of C): the activations the epilogue
// does not apply in registers, as a pass over the tile while it is in cache, then the caller's
// TileEpilogue (null: none).
inline void finish_tile(Activation act, const TileEpilogue* after, float* C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0,
                        int64_t n1) {
  if (!act_in_registers(act))
    for (int64_t m = m0; m < m1; ++m) activation(1, act, C + m * ldc + n0, n1 - n0);
  if (after) (*after)(m0, m1, n0, n1);
}

inline __m512 apply_act(Activation a, __m512 v) {
  switch (a) {
    case Activation::Gelu: return gelu16(v);
    case Activation::GeluTanh: return gelu_tanh16(v);
    case Activation::Relu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::Silu: return x_sigmoid16(v, v);
    case Activation::QuickGelu: return x_sigmoid16(v, _mm512_mul_ps(v, _mm512_set1_ps(1.702f)));
    default: return v;
  }
}

// The epilogue of an MR×32 microkernel. On the last K block (bias given): + bias, then the
// activation while the values are still in registers (act_in_registers); masked stores.
template <int MR>
inline void store_tile(__m512 (&c0)[MR], __m512 (&c1)[MR], const float* bias, Activation act, float* C, int64_t ldc,
                       __mmask16 m0, __mmask16 m1) {
  if (bias) {
    const __m512 bb0 = _mm512_loadu_ps(bias), bb1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm512_add_ps(c0[i], bb0);
      c1[i] = _mm512_add_ps(c1[i], bb1);
    }
    if (act != Activation::Linear)
      for (int i = 0; i < MR; ++i) {
        c0[i] = apply_act(act, c0[i]);
        c1[i] = apply_act(act, c1[i]);
      }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
  }
}

template <int MR>
inline void load_tile(__m512 (&c0)[MR], __m512 (&c1)[MR], const float* C, int64_t ldc, __mmask16 m0, __mmask16 m1,
                      bool load_c) {
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    c0[i] = load_c ? _mm512_maskz_loadu_ps(m0, C + i * ldc) : _mm512_setzero_ps();
    c1[i] = load_c ? _mm512_maskz_loadu_ps(m1, C + i * ldc + 16) : _mm512_setzero_ps();
  }
}

}  // namespace convnext::kernels::x86
