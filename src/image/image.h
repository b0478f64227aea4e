// An 8-bit image in memory: rows of interleaved channels (HWC), as PIL stores "L" (1 channel),
// "LA" (2), "RGB" (3) and "RGBA"/"CMYK" (4) images.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace convnext::image {

struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height × width × channels

  Image() = default;
  Image(int64_t w, int64_t h, int64_t c) : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c)) {}
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
  bool empty() const { return width == 0 || height == 0; }
};

// Pillow's resampling filters, with Pillow's enum values (Image.Resampling).
enum class Filter { Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };

}  // namespace convnext::image
