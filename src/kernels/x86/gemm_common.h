// Pieces the fp32 and bf16 GEMMs share: how the output is cut into tiles for the threads, how a
// tile's rows are shared between microkernel calls, and the epilogue that adds the bias and
// stores a 32-column strip under masks.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "kernels/x86/vmath_avx512.h"
#include "kernels/x86/activation_gradient.h"
#include "kernels/x86/weight_gradient.h"

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

// Prefetch for writing (PREFETCHW) the lines of C that the tile's next microkernel call stores:
// the next run of rows, else the tile's first run of the next panel (columns before n_end).
// Without it each of a call's 24 stores to a line not in cache waits for its read-for-ownership;
// one call's k loop is time enough for the lines to arrive. Stage 1's pwconv1 (K = 96: few FMAs
// per stored line) ran 5-8% faster alone, stage 1's training forward 10% (alternated runs).
// With an ActivationGradient, the same lines of its d too. Always inlined: GCC takes a function
// of prefetches alone for one without effects ("const") and drops calls it has not inlined.
template <class Out>  // float, or uint16_t for a bf16 output
[[gnu::always_inline]] inline void prefetch_next_output(Out* C, int64_t ldc, int64_t m, int rows, int64_t m0, int64_t m1,
                                                        int64_t n0, int64_t n_end, const ActivationGradient* grad = nullptr) {
  int64_t nm = m + rows, nn = n0;
  if (nm >= m1) nm = m0, nn = n0 + kPanel;
  if (nn >= n_end) return;
  for (int64_t i = nm, end = std::min(m1, nm + kMr); i < end; ++i) {
    __builtin_prefetch(C + i * ldc + nn, 1, 3);
    __builtin_prefetch(C + i * ldc + nn + 16, 1, 3);
    if (grad) {
      __builtin_prefetch(grad->d + i * grad->ldd + nn, 1, 3);
      __builtin_prefetch(grad->d + i * grad->ldd + nn + 16, 1, 3);
    }
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

// C = act(v), D = act'(v) for the MR×32 values v of a microkernel (A fixed at compile time).
template <Activation A, int MR>
inline void store_act_and_grad(__m512 (&c0)[MR], __m512 (&c1)[MR], float* C, int64_t ldc, float* D, int64_t ldd, __mmask16 m0,
                               __mmask16 m1) {
  for (int i = 0; i < MR; ++i) {
    __m512 a, g;
    act_and_grad16<A>(c0[i], a, g);
    _mm512_mask_storeu_ps(C + i * ldc, m0, a);
    _mm512_mask_storeu_ps(D + i * ldd, m0, g);
    act_and_grad16<A>(c1[i], a, g);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, a);
    _mm512_mask_storeu_ps(D + i * ldd + 16, m1, g);
  }
}

// The bias (when given: the last K block) added to an MR×32 block of accumulators.
template <int MR>
inline void add_bias(__m512 (&c0)[MR], __m512 (&c1)[MR], const float* bias) {
  if (!bias) return;
  const __m512 bb0 = _mm512_loadu_ps(bias), bb1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm512_add_ps(c0[i], bb0);
    c1[i] = _mm512_add_ps(c1[i], bb1);
  }
}

// The epilogue of an MR×32 microkernel. On the last K block (bias given): + bias, then the
// activation while the values are still in registers (act_in_registers); masked stores. `grad`
// (the last K block only; d at this microkernel's rows and columns): act'(v) into d as well, for
// the activations of with_act_and_grad.
// GRAD is a separate instantiation, so that the plain microkernels' code stays as it was.
template <int MR, bool GRAD = false>
inline void store_tile(__m512 (&c0)[MR], __m512 (&c1)[MR], const float* bias, Activation act, float* C, int64_t ldc,
                       __mmask16 m0, __mmask16 m1, const ActivationGradient* grad = nullptr) {
  add_bias<MR>(c0, c1, bias);
  if constexpr (GRAD) {  // act is one of with_act_and_grad's (the dispatcher sees to it)
    with_act_and_grad(act, [&](auto a) {
      store_act_and_grad<decltype(a)::value, MR>(c0, c1, C, ldc, grad->d, grad->ldd, m0, m1);
    });
    return;
  }
  if (bias && act != Activation::Linear)
    for (int i = 0; i < MR; ++i) {
      c0[i] = apply_act(act, c0[i]);
      c1[i] = apply_act(act, c1[i]);
    }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
  }
}

// The ActivationGradient of the microkernel call at rows m.., columns n0.. (null: none, or not
// the last K block: then the plain microkernel runs).
inline const ActivationGradient* run_gradient(const ActivationGradient* grad, bool last, int64_t m, int64_t n0,
                                              ActivationGradient& out) {
  if (!grad || !last) return nullptr;
  const int64_t at = m * grad->ldd + n0;
  out = {grad->d ? grad->d + at : nullptr, grad->ldd, grad->d16 ? grad->d16 + at : nullptr};
  return &out;
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

// ---- The weight gradients' driver (fp32 and bf16) --------------------------------------------
//
// dW[N][K] += Σ_m dy[m][n] · x[m][k] over M pixels (tens of thousands in the early stages) into
// a small dW. As linear_at on a packed x, every output tile streamed its share of dy from memory
// once per tile of columns, and x went through memory twice more to be packed: stage 1's weight
// gradients ran at half the FMA rate. Here the pixel sum is cut into groups of kGroup pixels
// (fixed: the order of the sums depends on M only, never on the thread count), each group into
// blocks of kBlock pixels whose dy (A: row runs in fp32, padded rows in bf16) and x (B, 32-column
// panels) are copied into buffers of the thread that computes them and read from there many
// times, while the next block's dy and x are prefetched into L2. Group 0 adds into dW itself, each
// later group into its own partial sum; the partials are added to dW at the end, in group order.
namespace wgrad {

constexpr int64_t kBlock = 256;                   // pixels per block
constexpr int64_t kGroup = kWeightGradientGroup;  // pixels per group
constexpr int64_t kMb = 384;                      // rows of dW per unit at most (their dy block stays in L2)
constexpr int64_t kPanels = 12;                   // 32-column panels per unit at most (their x block stays in L2)

// The inputs; dy, x: dy_bytes, x_bytes per element (4: fp32, 2: a map kept in bf16); `pair`: pixels per 4-byte
// element of the buffers (1: fp32, 2: bf16 pairs); `runs`: A is packed in row runs (see run()),
// else as rows of the block.
struct Operands {
  const void* dy;
  int64_t ldy;
  const void* x;
  int64_t ldx;
  int pair;
  bool runs;
  int x_bytes = 4, dy_bytes = 4;
};

// A block to pack: pixels [m0, m0 + kc), rows [n0, n1) of dW, columns [c0, c0 + width) in np
// panels; A's rows lda elements apart.
struct Block {
  int64_t m0, kc, n0, n1, c0, width, np, lda;
};

// A's row length in the buffer for n rows of dW: whole cache lines, an odd number of them, so
// that the microkernel's walk down a column (one line per k) spreads over every L1 set (384 floats
// a row, 24 lines, would keep to 8 of its 64 sets).
inline int64_t a_stride(int64_t n) {
  int64_t lines = (n + 15) / 16;
  if (lines % 2 == 0) ++lines;
  return lines * 16;
}

// Unit u of the work: pixels [r0, r1) of group g, rows [n0, n1) of dW, panels [p0, p1).
struct Unit {
  int64_t g, r0, r1, n0, n1, p0, p1;
};

struct Plan {
  int64_t M, N, groups, mblocks, mb, panels, pblocks, np, kpad;
  Plan(int64_t M_, int64_t N_, int64_t K, int threads) : M(M_), N(N_) {
    groups = (M + kGroup - 1) / kGroup;
    mblocks = (N + kMb - 1) / kMb;
    mb = (N + mblocks - 1) / mblocks;
    panels = (K + kPanel - 1) / kPanel;
    kpad = panels * kPanel;
    // Columns are split further only to give every thread several units (no sum changes).
    const int64_t want = threads > 1 ? 4 * threads : 1, have = groups * mblocks;
    pblocks = std::min(panels, std::max((panels + kPanels - 1) / kPanels, (want + have - 1) / have));
    np = (panels + pblocks - 1) / pblocks;
    pblocks = (panels + np - 1) / np;
  }
  int64_t units() const { return groups * mblocks * pblocks; }
  Unit unit(int64_t u) const {
    Unit t;
    t.g = u / (mblocks * pblocks);
    const int64_t mbk = u / pblocks % mblocks, pbk = u % pblocks;
    t.r0 = t.g * kGroup;
    t.r1 = std::min(M, t.r0 + kGroup);
    t.n0 = mbk * mb;
    t.n1 = std::min(N, t.n0 + mb);
    t.p0 = pbk * np;
    t.p1 = std::min(panels, t.p0 + np);
    return t;
  }
};

// Bytes to prefetch, in 128-byte rows (ChunkPrefetch::fetch_row), cut into one slice per
// microkernel call.
struct PrefetchRange {
  const char* at = nullptr;
  int64_t rows = 0;
  const char* slice(int64_t call, int64_t calls, int64_t& count) const {
    const int64_t per = (rows + calls - 1) / calls, first = std::min(rows, call * per);
    count = std::min(rows, first + per) - first;
    return at + first * 128;
  }
};
// Rows [m0, m0 + kc) of a matrix of `bytes`-byte elements, columns [c0, c1) (and what lies
// between the rows).
inline PrefetchRange rows_of(const void* base, int64_t bytes, int64_t ld, int64_t m0, int64_t kc, int64_t c0, int64_t c1) {
  if (kc <= 0) return {};
  const char* b = static_cast<const char*>(base) + (m0 * ld + c0) * bytes;
  const char* e = static_cast<const char*>(base) + ((m0 + kc - 1) * ld + c1) * bytes;
  return {b, (e - b + 127) / 128};
}

// pack(block, abuf, bbuf) fills the buffers: A (kk elements per column of the block, kk = kc /
// pair) either as rows of n1 − n0 elements, block.lda apart, or (o.runs) as the row runs of
// for_each_row_run, the run at n taking kk × rows elements at abuf + (n − n0)·kk, k-major; B as np
// panels of kk rows of 32 elements. micro(rows, kk, a, lda, b_panel, C, ldc, mask_lo, mask_hi,
// load_c, prefetch, rows) adds the product of `rows` columns of A (from a, lda apart) and one
// panel into C. Copying runs costs more than copying rows and reads faster: fp32 packs runs
// (10% faster on ConvNeXt-T's stage 1), bf16 rows (its conversion of rows is vectorised whole).
template <class Pack, class Micro>
void run(int threads, int64_t M, int64_t N, int64_t K, float* dW, const Operands& o, Pack&& pack, Micro&& micro) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const Plan pl(M, N, K, threads);
  // The partial sums of groups 1.. (the calling thread's buffer; the team writes disjoint parts).
  static thread_local AlignedVector<float> partials;  // 64-byte aligned: its rows are the microkernels' C
  const size_t need = static_cast<size_t>((pl.groups - 1) * N * pl.kpad);
  if (partials.size() < need) partials.resize(need);
  float* part = partials.data();
  const int64_t units = pl.units();
  parallel::for_chunks(units, 1, [&](int64_t u, int64_t) {
    const Unit un = pl.unit(u);
    static thread_local AlignedVector<uint32_t> abuf, bbuf;  // 64-byte aligned: B rows are stored whole
    if (abuf.size() < static_cast<size_t>(a_stride(kMb) * kBlock)) abuf.resize(static_cast<size_t>(a_stride(kMb) * kBlock));
    if (bbuf.size() < static_cast<size_t>(kPanels * kBlock * kPanel)) bbuf.resize(static_cast<size_t>(kPanels * kBlock * kPanel));
    float* C = un.g == 0 ? dW : part + (un.g - 1) * N * pl.kpad;
    const int64_t ldc = un.g == 0 ? K : pl.kpad, lda = a_stride(un.n1 - un.n0);
    for (int64_t m0 = un.r0; m0 < un.r1; m0 += kBlock) {
      const int64_t kc = std::min(kBlock, un.r1 - m0), kk = (kc + o.pair - 1) / o.pair;
      pack(Block{m0, kc, un.n0, un.n1, un.p0 * kPanel, std::min(K, un.p1 * kPanel) - un.p0 * kPanel, un.p1 - un.p0, lda},
           abuf.data(), bbuf.data());
      // While this block is computed, its successor's dy and x come into L2: this unit's next
      // block or, at the group's end, the first of the unit this thread likely takes next.
      Unit next = un;
      int64_t next_m0 = m0 + kBlock;
      if (next_m0 >= un.r1 && u + parallel::team_size() < units) {
        next = pl.unit(u + parallel::team_size());
        next_m0 = next.r0;
      }
      const int64_t next_kc = next_m0 < next.r1 ? std::min(kBlock, next.r1 - next_m0) : 0;
      const PrefetchRange pa = rows_of(o.dy, o.dy_bytes, o.ldy, next_m0, next_kc, next.n0, next.n1);
      const PrefetchRange pb = rows_of(o.x, o.x_bytes, o.ldx, next_m0, next_kc, next.p0 * kPanel, std::min(K, next.p1 * kPanel));
      const PrefetchRange& big = pa.rows >= pb.rows ? pa : pb;  // spread over the microkernels' k steps
      const PrefetchRange& small = pa.rows >= pb.rows ? pb : pa;  // issued before each call
      const int64_t calls = (un.p1 - un.p0) * ((un.n1 - un.n0 + kMr - 1) / kMr);
      int64_t call = 0;
      for (int64_t p = un.p0; p < un.p1; ++p) {
        const int64_t c0 = p * kPanel, nc = std::min(kPanel, K - c0);
        const uint32_t* bp = bbuf.data() + (p - un.p0) * kk * kPanel;
        const __mmask16 lo = un.g == 0 ? mask_lo(nc) : 0xffff, hi = un.g == 0 ? mask_hi(nc) : 0xffff;
        for_each_row_run(un.n0, un.n1, [&](int64_t n, int rows) {
          int64_t big_rows = 0, small_rows = 0;
          const char* big_at = big.slice(call, calls, big_rows);
          const char* small_at = small.slice(call, calls, small_rows);
          for (int64_t r = 0; r < small_rows; ++r) ChunkPrefetch::fetch_row(small_at, r);
          ++call;
          const uint32_t* a = o.runs ? abuf.data() + (n - un.n0) * kk : abuf.data() + (n - un.n0);
          micro(rows, kk, a, o.runs ? rows : lda, bp, C + n * ldc + c0, ldc, lo, hi, un.g == 0 || m0 > un.r0, big_at,
                big_rows);
        });
      }
    }
  }, units > 1 && M * N * K > 32768 ? threads : 1);
  if (pl.groups == 1) return;
  parallel::for_each(N, threads, N * K * pl.groups > 65536, [&](int64_t n) {
    float* d = dW + n * K;
    for (int64_t g = 1; g < pl.groups; ++g) {
      const float* s = part + ((g - 1) * N + n) * pl.kpad;
      for (int64_t k = 0; k < K; ++k) d[k] += s[k];
    }
  });
}

}  // namespace wgrad

}  // namespace convnext::kernels::x86
