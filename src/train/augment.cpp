// The training transform of transformers' image-classification example, on the decoded uint8
// image: torchvision's RandomResizedCrop (which on a PIL image crops, then resizes with Pillow's
// BILINEAR), RandomHorizontalFlip, then the processor's own rescale + normalisation, so that
// augmented and plain examples differ only by the geometry.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "image/resample.h"
#include "train/data.h"

namespace convnext::train {

namespace sampling {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int64_t uniform_index(std::mt19937_64& rng, int64_t n) {
  // Rejection sampling: the modulo of the accepted range is exactly uniform.
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return static_cast<int64_t>(r % un);
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t example_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

}  // namespace sampling

CropBox random_resized_crop_box(int64_t width, int64_t height, const Augment& a, std::mt19937_64& rng) {
  if (width < 1 || height < 1) throw Error("RandomResizedCrop of an empty image");
  if (!(a.scale_min >= 0 && a.scale_min <= a.scale_max) || !(a.ratio_min > 0 && a.ratio_min <= a.ratio_max))
    throw Error("RandomResizedCrop needs 0 <= scale_min <= scale_max and 0 < ratio_min <= ratio_max");
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double log_lo = std::log(a.ratio_min), log_hi = std::log(a.ratio_max);
  // Python's round() rounds half to even, as nearbyint does in the default rounding mode.
  auto round_int = [](double v) { return static_cast<int64_t>(std::nearbyint(v)); };
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * (a.scale_min + (a.scale_max - a.scale_min) * sampling::uniform01(rng));
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * sampling::uniform01(rng));
    const int64_t w = round_int(std::sqrt(target_area * aspect));
    const int64_t h = round_int(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      CropBox b;
      b.height = h;
      b.width = w;
      b.top = sampling::uniform_index(rng, height - h + 1);  // torch.randint(0, H − h + 1) first,
      b.left = sampling::uniform_index(rng, width - w + 1);  // then the column
      return b;
    }
  }
  // Fallback: the whole image, cut down to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  CropBox b;
  b.width = width;
  b.height = height;
  if (in_ratio < a.ratio_min) {
    b.height = std::max<int64_t>(1, round_int(static_cast<double>(width) / a.ratio_min));
  } else if (in_ratio > a.ratio_max) {
    b.width = std::max<int64_t>(1, round_int(static_cast<double>(height) * a.ratio_max));
  }
  b.top = (height - b.height) / 2;
  b.left = (width - b.width) / 2;
  return b;
}

Tensor preprocess_example(ImageU8 u8, const ConvNextImageProcessor& processor, const Augment& augment,
                          std::mt19937_64& rng) {
  if (!augment.enabled) return processor.preprocess(std::move(u8));
  if (u8.width < 1 || u8.height < 1) throw Error("empty image");
  if (static_cast<int64_t>(u8.pixels.size()) != u8.width * u8.height * u8.channels)
    throw Error("image buffer has " + std::to_string(u8.pixels.size()) + " bytes for " + std::to_string(u8.width) + "x" +
                std::to_string(u8.height) + "x" + std::to_string(u8.channels));
  // The size the processor gives this image: a square of shortest_edge in both resize branches
  // (crop below 384, warp from 384 on), the image's own size without resizing.
  const ImageProcessorConfig& cfg = processor.config();
  const int64_t out_w = cfg.do_resize ? cfg.shortest_edge : u8.width;
  const int64_t out_h = cfg.do_resize ? cfg.shortest_edge : u8.height;

  const CropBox box = random_resized_crop_box(u8.width, u8.height, augment, rng);
  const int64_t C = u8.channels;
  image::Image crop(box.width, box.height, C);
  for (int64_t y = 0; y < box.height; ++y) {
    const uint8_t* src = u8.pixels.data() + ((box.top + y) * u8.width + box.left) * C;
    std::copy(src, src + box.width * C, crop.row(y));
  }
  image::Image resized = image::resize_pil(crop, out_w, out_h, image::Filter::Bilinear);
  if (augment.hflip && sampling::uniform01(rng) < 0.5) {  // torch.rand(1) < p
    for (int64_t y = 0; y < out_h; ++y) {
      uint8_t* row = resized.row(y);
      for (int64_t l = 0, r = out_w - 1; l < r; ++l, --r)
        for (int64_t c = 0; c < C; ++c) std::swap(row[l * C + c], row[r * C + c]);
    }
  }

  // The rest is the processor's arithmetic unchanged: run it with resizing turned off.
  ImageProcessorConfig no_resize = cfg;
  no_resize.do_resize = false;
  u8.width = resized.width;
  u8.height = resized.height;
  u8.pixels = std::move(resized.pixels);
  return ConvNextImageProcessor(std::move(no_resize), processor.backend()).preprocess(std::move(u8));
}

}  // namespace convnext::train
