// torchvision / PyTorch uint8 antialiased resize (aten UpSampleKernel.cpp's separable int16 path).
//
// Like Pillow it computes per-axis filter taps in double (support scaled by the downscale factor),
// runs the horizontal pass first into an 8-bit buffer and skips a pass whose size is unchanged.
// Unlike Pillow the normalised weights are quantised to int16 with a per-axis precision: the
// largest p < 22 with round(max_weight · 2^(p+1)) < 2^15. That is why it differs from Pillow by
// ±1 here and there, and why we keep it separate from resample.cpp.
#include "core/parallel.h"
#include "image/resize_torchvision.h"


#include <algorithm>
#include <cmath>

#include "convnext/error.h"

namespace convnext::image {

namespace {

struct Taps {
  std::vector<int64_t> start, count;
  std::vector<int16_t> w;  // out × ksize
  int64_t ksize = 0;
  int precision = 0;
};

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {  // a = -0.5 for the antialiased path ("compatibility with PIL")
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

Taps compute_taps(int64_t in, int64_t out, bool cubic) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = (cubic ? 2.0 : 1.0) * (scale >= 1.0 ? scale : 1.0);
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  Taps t;
  t.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  std::vector<double> wd(static_cast<size_t>(out * t.ksize), 0.0);
  double max_w = 0.0;
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xsize = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - xmin;
    double total = 0.0;
    double* w = wd.data() + i * t.ksize;
    for (int64_t j = 0; j < xsize; ++j) {
      const double arg = (static_cast<double>(j + xmin) - center + 0.5) * invscale;
      w[j] = cubic ? bicubic(arg) : bilinear(arg);
      total += w[j];
    }
    for (int64_t j = 0; j < xsize; ++j) {
      if (total != 0.0) w[j] /= total;
      max_w = std::max(max_w, w[j]);
    }
    t.start.push_back(xmin);
    t.count.push_back(xsize);
  }
  int p = 0;
  for (p = 0; p < 22; ++p) {
    const int next = static_cast<int>(0.5 + max_w * static_cast<double>(1 << (p + 1)));
    if (next >= (1 << 15)) break;
  }
  t.precision = p;
  t.w.resize(wd.size());
  for (size_t k = 0; k < wd.size(); ++k) {
    const double v = wd[k] * static_cast<double>(1 << p);
    t.w[k] = static_cast<int16_t>(wd[k] < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return t;
}

inline uint8_t clip(int32_t v, int p) {
  v >>= p;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

Image pass_horizontal(const Image& in, int64_t out_w, const Taps& t) {
  Image out(out_w, in.height, in.channels);
  const int64_t C = in.channels;
  parallel::for_each(in.height, in.height * out_w > 4096, [&](int64_t y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.row(y);
    for (int64_t x = 0; x < out_w; ++x) {
      const int16_t* w = t.w.data() + x * t.ksize;
      const uint8_t* s = src + t.start[static_cast<size_t>(x)] * C;
      for (int64_t c = 0; c < C; ++c) {
        int32_t acc = 1 << (t.precision - 1);
        for (int64_t j = 0; j < t.count[static_cast<size_t>(x)]; ++j) acc += s[j * C + c] * w[j];
        dst[x * C + c] = clip(acc, t.precision);
      }
    }
  });
  return out;
}

Image pass_vertical(const Image& in, int64_t out_h, const Taps& t) {
  Image out(in.width, out_h, in.channels);
  const int64_t row = in.width * in.channels;
  parallel::for_each(out_h, out_h * row > 4096, [&](int64_t y) {
    const int16_t* w = t.w.data() + y * t.ksize;
    const int64_t y0 = t.start[static_cast<size_t>(y)], n = t.count[static_cast<size_t>(y)];
    uint8_t* dst = out.row(y);
    for (int64_t i = 0; i < row; ++i) {
      int32_t acc = 1 << (t.precision - 1);
      for (int64_t j = 0; j < n; ++j) acc += in.row(y0 + j)[i] * w[j];
      dst[i] = clip(acc, t.precision);
    }
  });
  return out;
}

// nearest-exact: src = min(floor((dst + 0.5) · in / out), in − 1).
Image resize_nearest_exact(const Image& in, int64_t out_w, int64_t out_h) {
  Image out(out_w, out_h, in.channels);
  const float sx = static_cast<float>(in.width) / static_cast<float>(out_w);
  const float sy = static_cast<float>(in.height) / static_cast<float>(out_h);
  for (int64_t y = 0; y < out_h; ++y) {
    const int64_t yy = std::min<int64_t>(static_cast<int64_t>(std::floor((static_cast<float>(y) + 0.5f) * sy)), in.height - 1);
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t xx = std::min<int64_t>(static_cast<int64_t>(std::floor((static_cast<float>(x) + 0.5f) * sx)), in.width - 1);
      for (int64_t c = 0; c < in.channels; ++c) out.row(y)[x * in.channels + c] = in.row(yy)[xx * in.channels + c];
    }
  }
  return out;
}

}  // namespace

Image resize_torchvision(const Image& in, int64_t out_w, int64_t out_h, Filter filter) {
  if (out_w < 1 || out_h < 1) throw Error("resize to " + std::to_string(out_w) + "x" + std::to_string(out_h) + " is empty");
  if (in.empty()) throw Error("cannot resize an empty image");
  if (filter == Filter::Nearest) return resize_nearest_exact(in, out_w, out_h);
  const bool cubic = filter != Filter::Bilinear;  // LANCZOS, BOX, HAMMING fall back to bicubic
  Image cur = in;
  if (out_w != in.width) cur = pass_horizontal(cur, out_w, compute_taps(in.width, out_w, cubic));
  if (out_h != in.height) cur = pass_vertical(cur, out_h, compute_taps(in.height, out_h, cubic));
  return cur;
}

}  // namespace convnext::image
