// Pillow 9.4's Image.resize for 8-bit images, bit-exact (src/libImaging/Resample.c, Geometry.c,
// src/_imaging.c `_resize`, src/PIL/Image.py `resize`; see also shared/reference/
// hf_convnext_semantics.md §7). Our own code, written from reading those sources.
//
// Filters other than NEAREST (Resample.c), separable, per channel:
//  * Per axis, precompute_coeffs in double: scale = in/out, filterscale = max(scale, 1) (the
//    filter is stretched only when downscaling, which is the antialiasing), support =
//    filter.support * filterscale, ksize = 2*ceil(support) + 1; for output i, center =
//    (i + 0.5) * scale, taps [xmin, xmax) with xmin = (int)(center - support + 0.5) and
//    xmax = (int)(center + support + 0.5) (C truncation), clipped to the image; weights
//    filter((x + xmin - center + 0.5) * (1 / filterscale)), divided by their sum. (Pre-4.2
//    floor/ceil bounds add edge taps that BOX weights 1 through rounding, e.g. for 97 → 40,
//    so the +0.5 truncation matters.) Every one of
//    those operations (the float box edges, multiplying by the reciprocal, the float literals
//    0.54f/0.46f in HAMMING, the evaluation order of BICUBIC) is reproduced as written, and no
//    FMA is used, because a weight that differs in its last bit can round to another 22-bit
//    integer below.
//  * Weights become 22-bit fixed point, (int)(w * 2^22 ± 0.5), rounding half away from zero;
//    they need not sum to 2^22 and the result depends on that rounding, so it is copied.
//  * Each output sample is acc = 2^21 + Σ pixel * weight in int32 (exact in any order, which is
//    why SIMD and threads give the same bytes), then clamp(acc >> 22, 0, 255): round half up.
//  * Horizontal pass first, only over the source rows the vertical pass reads, into an 8-bit
//    temporary (rounded and clipped as above), then the vertical pass over that temporary. The
//    intermediate 8-bit rounding (and so the pass order) changes results, so it is kept.
//  * A pass whose size does not change is skipped, as Pillow does. For the whole-image box this
//    is only speed: at scale 1 every tap sits at an integer offset, where all five filters are
//    1 at 0 and 0 (or, for LANCZOS, ~1e-17, which rounds to 0) elsewhere, so the pass would be
//    an exact copy. Image.resize returns a copy when neither size changes.
//  * "LA"/"RGBA" are resized premultiplied (Image.resize converts to "La"/"RGBa" and back):
//    c' = (t + (t >> 8)) >> 8 with t = c * a + 128, and back c = min(255, 255 * c' / a) unless
//    a is 0 or 255.
// NEAREST (Geometry.c, ImagingScaleAffine, reached from _resize's affine transform) samples at
// positions accumulated in double: x0 = scale / 2, then x += scale per pixel, taking
// (int)x (-1 for negative). Accumulating (rather than computing (i + 0.5) * scale) changes
// which pixel is picked when a position lands near an integer, so it is copied; a position
// outside the image (should drift ever put one there) gives 0, as Pillow's fill does. No alpha
// premultiplication for NEAREST.
#include "core/parallel.h"
#include "image/resample.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "convnext/error.h"
#include "core/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace convnext::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;                 // 22, as Pillow
constexpr int32_t kRoundHalf = 1 << (kPrecisionBits - 1);  // the accumulator's start

// ---- filters, as Resample.c writes them ---------------------------------------------------

// Pillow's own build does not fuse a*b+c into FMA (baseline x86-64 has none), so the double
// arithmetic of weights and positions must not either, even when built with -march=native.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float literals, as Pillow
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct FilterDef {
  double (*fn)(double);
  double support;
};

FilterDef filter_def(Filter f) {
  switch (f) {
    case Filter::Box: return {box_filter, 0.5};
    case Filter::Bilinear: return {bilinear_filter, 1.0};
    case Filter::Hamming: return {hamming_filter, 1.0};
    case Filter::Bicubic: return {bicubic_filter, 2.0};
    case Filter::Lanczos: return {lanczos_filter, 3.0};
    default: throw Error("resize: unsupported resampling filter " + std::to_string(static_cast<int>(f)));
  }
}

// ---- coefficients -------------------------------------------------------------------------

// Weights are stored in rows of kstride = ksize rounded up to kMaxLanes, zero beyond each output's
// count, so that the kernels can read whole vectors of taps.
constexpr int kMaxLanes = 16;

// One axis: output i reads source [first[i], first[i] + count[i]) with 22-bit weights
// k[i * kstride + t].
struct Axis {
  int ksize = 0, kstride = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

Axis precompute_axis(int in_size, int out_size, const FilterDef& f) {
  // Pillow passes the box edges as floats: (double)(in1 - in0) with in0 = 0.0f, in1 = (float)in_size.
  const double in0 = 0.0;
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = f.support * filterscale;
  Axis ax;
  ax.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  ax.kstride = (ax.ksize + kMaxLanes - 1) / kMaxLanes * kMaxLanes;
  ax.first.resize(out_size);
  ax.count.resize(out_size);
  ax.k.assign(static_cast<size_t>(out_size) * ax.kstride, 0);
  std::vector<double> w(static_cast<size_t>(ax.ksize) + 2);
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation toward zero, as C
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    const int n = std::clamp(xmax - xmin, 0, ax.ksize);  // never clamps in practice
    double ww = 0.0;
    for (int x = 0; x < n; ++x) {
      w[x] = f.fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &ax.k[static_cast<size_t>(xx) * ax.kstride];
    for (int x = 0; x < n; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    ax.first[xx] = xmin;
    ax.count[xx] = n;
  }
  return ax;
}
#pragma GCC pop_options

// ---- row kernels (integer only; compiled once per instruction set) -----------------------

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift (C++20)
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Splits a source row into C channel planes (plane stride in_w + kstride, the tail left zero), so
// that every horizontal output sample is a dot product of contiguous bytes with contiguous
// weights. Taps past an output's count have weight 0 and read only the zero tail.
template <int C>
[[gnu::always_inline]] inline void split_planes(const uint8_t* src, int64_t in_w, int64_t ps, uint8_t* planes) {
  if constexpr (C == 1) {
    std::memcpy(planes, src, static_cast<size_t>(in_w));
  } else {
    for (int64_t x = 0; x < in_w; ++x)
      for (int c = 0; c < C; ++c) planes[c * ps + x] = src[x * C + c];
  }
}

// One source row → one row of the horizontal pass, plain C++.
template <int C>
void horizontal_row_generic(const uint8_t* src, int64_t in_w, const Axis& ax, int64_t out_w, uint8_t* dst,
                            uint8_t* planes) {
  const int64_t ps = in_w + ax.kstride;
  split_planes<C>(src, in_w, ps, planes);
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* k = ax.k.data() + xx * ax.kstride;
    const int n = ax.count[xx];
    for (int c = 0; c < C; ++c) {
      const uint8_t* p = planes + c * ps + ax.first[xx];
      int32_t acc = kRoundHalf;
      for (int t = 0; t < n; ++t) acc += static_cast<int32_t>(p[t]) * k[t];
      dst[xx * C + c] = clip8(acc);
    }
  }
}

#if defined(__x86_64__)
// The C sums of four-lane partial sums x[0..C), rounded and clipped like clip8, as C bytes.
template <int C>
[[gnu::target("avx2")]] inline void store_sums(const __m128i* x, uint8_t* dst) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i h01 = _mm_hadd_epi32(x[0], C > 1 ? x[1] : zero);
  const __m128i h23 = _mm_hadd_epi32(C > 2 ? x[2] : zero, C > 3 ? x[3] : zero);
  __m128i v = _mm_add_epi32(_mm_hadd_epi32(h01, h23), _mm_set1_epi32(kRoundHalf));
  v = _mm_srai_epi32(v, kPrecisionBits);
  v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);  // saturate to int16, then to 0..255
  const uint32_t bytes = static_cast<uint32_t>(_mm_cvtsi128_si32(v));
  std::memcpy(dst, &bytes, C);
}

// The horizontal row with AVX2: 8 taps per vector, the weights loaded once for all channels.
template <int C>
[[gnu::target("avx2")]] void horizontal_row_avx2(const uint8_t* src, int64_t in_w, const Axis& ax, int64_t out_w,
                                                 uint8_t* dst, uint8_t* planes) {
  const int64_t ps = in_w + ax.kstride;
  split_planes<C>(src, in_w, ps, planes);
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* k = ax.k.data() + xx * ax.kstride;
    const uint8_t* p = planes + ax.first[xx];
    const int blocks = (ax.count[xx] + 7) / 8;
    __m256i acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_si256();
    for (int b = 0; b < blocks; ++b, k += 8, p += 8) {
      const __m256i kv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k));
      for (int c = 0; c < C; ++c) {
        const __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + c * ps)));
        acc[c] = _mm256_add_epi32(acc[c], _mm256_mullo_epi32(px, kv));
      }
    }
    __m128i x[C];
    for (int c = 0; c < C; ++c)
      x[c] = _mm_add_epi32(_mm256_castsi256_si128(acc[c]), _mm256_extracti128_si256(acc[c], 1));
    store_sums<C>(x, dst + xx * C);
  }
}

// And with AVX-512: 16 taps per vector. (GCC 12 warns falsely inside its AVX-512 headers.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int C>
[[gnu::target("avx512f,avx512bw")]] void horizontal_row_avx512(const uint8_t* src, int64_t in_w, const Axis& ax,
                                                               int64_t out_w, uint8_t* dst, uint8_t* planes) {
  const int64_t ps = in_w + ax.kstride;
  split_planes<C>(src, in_w, ps, planes);
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* k = ax.k.data() + xx * ax.kstride;
    const uint8_t* p = planes + ax.first[xx];
    const int blocks = (ax.count[xx] + 15) / 16;
    __m512i acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_si512();
    for (int b = 0; b < blocks; ++b, k += 16, p += 16) {
      const __m512i kv = _mm512_loadu_si512(k);
      for (int c = 0; c < C; ++c) {
        const __m512i px = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c * ps)));
        acc[c] = _mm512_add_epi32(acc[c], _mm512_mullo_epi32(px, kv));
      }
    }
    __m128i x[C];
    for (int c = 0; c < C; ++c) {
      const __m256i y = _mm256_add_epi32(_mm512_castsi512_si256(acc[c]), _mm512_extracti64x4_epi64(acc[c], 1));
      x[c] = _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    }
    store_sums<C>(x, dst + xx * C);
  }
}
#pragma GCC diagnostic pop
#endif

// One output row of the vertical pass: out[j] over a row of `len` bytes (width * C), reading
// n source rows from `src` (row stride `stride`) with weights k.
[[gnu::always_inline]] inline void vertical_row_impl(const uint8_t* src, int64_t stride, int n, const int32_t* k,
                                                     int64_t len, uint8_t* dst) {
  constexpr int64_t kBlock = 1024;
  alignas(64) int32_t acc[kBlock];
  for (int64_t j0 = 0; j0 < len; j0 += kBlock) {
    const int64_t m = std::min(kBlock, len - j0);
    for (int64_t j = 0; j < m; ++j) acc[j] = kRoundHalf;
    int t = 0;
    for (; t + 1 < n; t += 2) {  // two taps per sweep: half the accumulator traffic
      const uint8_t* r0 = src + t * stride + j0;
      const uint8_t* r1 = r0 + stride;
      const int32_t k0 = k[t], k1 = k[t + 1];
      for (int64_t j = 0; j < m; ++j) acc[j] += static_cast<int32_t>(r0[j]) * k0 + static_cast<int32_t>(r1[j]) * k1;
    }
    if (t < n) {
      const uint8_t* r0 = src + t * stride + j0;
      const int32_t k0 = k[t];
      for (int64_t j = 0; j < m; ++j) acc[j] += static_cast<int32_t>(r0[j]) * k0;
    }
    for (int64_t j = 0; j < m; ++j) dst[j0 + j] = clip8(acc[j]);
  }
}

using HorizontalFn = void (*)(const uint8_t*, int64_t, const Axis&, int64_t, uint8_t*, uint8_t*);
using VerticalFn = void (*)(const uint8_t*, int64_t, int, const int32_t*, int64_t, uint8_t*);

struct RowKernels {
  HorizontalFn horizontal[4];  // by channel count - 1
  VerticalFn vertical;
};

void vertical_row_generic(const uint8_t* s, int64_t st, int n, const int32_t* k, int64_t len, uint8_t* d) {
  vertical_row_impl(s, st, n, k, len, d);
}
const RowKernels kernels_generic = {
    {horizontal_row_generic<1>, horizontal_row_generic<2>, horizontal_row_generic<3>, horizontal_row_generic<4>},
    vertical_row_generic};
#if defined(__x86_64__)
[[gnu::target("avx2")]] void vertical_row_avx2(const uint8_t* s, int64_t st, int n, const int32_t* k, int64_t len,
                                               uint8_t* d) {
  vertical_row_impl(s, st, n, k, len, d);
}
const RowKernels kernels_avx2 = {
    {horizontal_row_avx2<1>, horizontal_row_avx2<2>, horizontal_row_avx2<3>, horizontal_row_avx2<4>},
    vertical_row_avx2};
[[gnu::target("avx512f,avx512bw")]] void vertical_row_avx512(const uint8_t* s, int64_t st, int n, const int32_t* k,
                                                             int64_t len, uint8_t* d) {
  vertical_row_impl(s, st, n, k, len, d);
}
const RowKernels kernels_avx512 = {
    {horizontal_row_avx512<1>, horizontal_row_avx512<2>, horizontal_row_avx512<3>, horizontal_row_avx512<4>},
    vertical_row_avx512};
#endif

// The row kernels of the instruction set core/cpu.h selects for the whole library (AVX-512, AVX2,
// or plain C++; CONVNEXT_KERNELS=portable|avx2 asks for less). Integer sums are exact in any
// order, so every variant gives the same bytes.
const RowKernels& row_kernels() {
#if defined(__x86_64__)
  switch (selected_isa()) {
    case Isa::Avx512: return kernels_avx512;
    case Isa::Avx2: return kernels_avx2;
    case Isa::Portable: break;
  }
#endif
  return kernels_generic;
}

// ---- the two-pass resample (ImagingResampleInner) -----------------------------------------

constexpr int64_t kParallelWork = 1 << 16;  // multiply-adds below which one thread does it all

Image resample(const Image& in, int out_w, int out_h, const FilterDef& f) {
  const int64_t C = in.channels, in_w = in.width, in_h = in.height;
  const bool need_horizontal = out_w != in_w;
  const bool need_vertical = out_h != in_h;
  const RowKernels& kern = row_kernels();

  // Vertical coefficients first: they decide which source rows the horizontal pass computes.
  const Axis ay = precompute_axis(static_cast<int>(in_h), out_h, f);
  const int64_t y_first = ay.first.front();
  const int64_t y_last = need_vertical ? ay.first.back() + ay.count.back() : in_h;
  const int64_t row0 = need_vertical ? y_first : 0;

  Image out(need_horizontal ? out_w : in_w, out_h, C);
  const uint8_t* vin = in.pixels.data();  // what the vertical pass reads
  int64_t vin_row0 = 0;                   // the source row that vin's first row holds
  std::unique_ptr<uint8_t[]> tmp;         // the 8-bit intermediate, not zero-filled
  if (need_horizontal) {
    const Axis ax = precompute_axis(static_cast<int>(in_w), out_w, f);
    const int64_t rows = y_last - row0;
    const int64_t out_stride = out_w * C, in_stride = in_w * C;
    uint8_t* hout = out.pixels.data();  // the result itself when the vertical pass is skipped
    if (need_vertical) {
      tmp = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(rows * out_stride));
      hout = tmp.get();
    }
    int64_t taps = 0;
    for (int c : ax.count) taps += c;
    const int64_t work = rows * taps * C;
    const HorizontalFn row_fn = kern.horizontal[C - 1];
    const int threads = work > kParallelWork ? parallel::max_threads() : 1;
    parallel::for_chunks(rows, std::max<int64_t>(1, rows / (4 * threads)), [&](int64_t y0, int64_t y1) {
      std::vector<uint8_t> planes(static_cast<size_t>(C * (in_w + ax.kstride)), 0);
      for (int64_t y = y0; y < y1; ++y)
        row_fn(in.pixels.data() + (row0 + y) * in_stride, in_w, ax, out_w, hout + y * out_stride, planes.data());
    }, threads);
    if (!need_vertical) return out;
    vin = tmp.get();
    vin_row0 = row0;
  }

  const int64_t len = out.width * C;
  int64_t taps = 0;
  for (int c : ay.count) taps += c;
  const int64_t work = taps * len;
  parallel::for_each(out_h, work > kParallelWork, [&](int64_t yy) {
    kern.vertical(vin + (ay.first[yy] - vin_row0) * len, len, ay.count[yy],
                  ay.k.data() + static_cast<size_t>(yy) * ay.kstride, len, out.row(yy));
  });
  return out;
}

// ---- NEAREST (ImagingScaleAffine) ---------------------------------------------------------

// Source index per output pixel, -1 outside the image: positions accumulate in double from
// scale / 2 in steps of scale, as Geometry.c does.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
std::vector<int64_t> nearest_positions(int64_t in_size, int out_size) {
  const double a = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  std::vector<int64_t> pos(out_size);
  double v = 0.0 + a * 0.5;
  for (int i = 0; i < out_size; ++i) {
    const int64_t p = v < 0.0 ? -1 : static_cast<int>(v);
    pos[i] = (p >= 0 && p < in_size) ? p : -1;
    v += a;
  }
  return pos;
}
#pragma GCC pop_options

Image nearest(const Image& in, int out_w, int out_h) {
  const int64_t C = in.channels;
  const std::vector<int64_t> xs = nearest_positions(in.width, out_w), ys = nearest_positions(in.height, out_h);
  Image out(out_w, out_h, C);  // zero-filled: Pillow's fill for positions outside the image
  parallel::for_each(out_h, static_cast <int64_t>(out_w) * out_h * C > (1 << 18), [&](int64_t y) {
    if (ys[y] < 0) return;
    const uint8_t* src = in.row(ys[y]);
    uint8_t* dst = out.row(y);
    if (C == 1) {
      for (int64_t x = 0; x < out_w; ++x)
        if (xs[x] >= 0) dst[x] = src[xs[x]];
    } else if (C == 3) {
      for (int64_t x = 0; x < out_w; ++x)
        if (xs[x] >= 0) std::memcpy(dst + 3 * x, src + 3 * xs[x], 3);
    } else {
      for (int64_t x = 0; x < out_w; ++x)
        if (xs[x] >= 0) std::memcpy(dst + C * x, src + C * xs[x], static_cast<size_t>(C));
    }
  });
  return out;
}

// ---- alpha premultiplication ("LA" → "La", "RGBA" → "RGBa" and back, Convert.c) ------------

Image premultiply(const Image& in) {
  Image out = in;
  const int64_t C = in.channels, n = in.width * in.height;
  parallel::for_each(n, n > (1 << 18), [&](int64_t i) {
    uint8_t* p = out.pixels.data() + i * C;
    const uint32_t a = p[C - 1];
    for (int64_t c = 0; c + 1 < C; ++c) {
      const uint32_t t = p[c] * a + 128;
      p[c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
    }
  });
  return out;
}

void unpremultiply(Image& im) {
  const int64_t C = im.channels, n = im.width * im.height;
  parallel::for_each(n, n > (1 << 18), [&](int64_t i) {
    uint8_t* p = im.pixels.data() + i * C;
    const uint32_t a = p[C - 1];
    if (a == 255 || a == 0) return;
    for (int64_t c = 0; c + 1 < C; ++c) p[c] = static_cast<uint8_t>(std::min<uint32_t>(255, (255 * p[c]) / a));
  });
}

}  // namespace

Image resize_pil(const Image& in, int64_t out_width, int64_t out_height, Filter filter) {
  if (out_width < 1 || out_height < 1)
    throw Error("resize: output size " + std::to_string(out_width) + "x" + std::to_string(out_height) +
                " must be at least 1x1");
  if (out_width > INT_MAX || out_height > INT_MAX || in.width > INT_MAX || in.height > INT_MAX)
    throw Error("resize: image sizes must fit in a 32-bit int, as in Pillow");
  if (in.width < 1 || in.height < 1) throw Error("resize: the input image is empty");
  if (in.channels < 1 || in.channels > 4)
    throw Error("resize: " + std::to_string(in.channels) + " channels; expected 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)");
  if (in.pixels.size() != static_cast<size_t>(in.width * in.height * in.channels))
    throw Error("resize: the pixel buffer holds " + std::to_string(in.pixels.size()) + " bytes, expected " +
                std::to_string(in.width * in.height * in.channels));
  const int ow = static_cast<int>(out_width), oh = static_cast<int>(out_height);

  if (filter == Filter::Nearest) {
    if (ow == in.width && oh == in.height) return in;
    return nearest(in, ow, oh);
  }
  const FilterDef f = filter_def(filter);  // validates the filter before the same-size copy
  if (ow == in.width && oh == in.height) return in;
  if (in.channels == 2 || in.channels == 4) {
    Image out = resample(premultiply(in), ow, oh, f);
    unpremultiply(out);
    return out;
  }
  return resample(in, ow, oh, f);
}

}  // namespace convnext::image
