// Pillow's Image.resize, bit-exact with Pillow 9.4 for 8-bit images.
#pragma once
#include <cstdint>

#include "image/image.h"

namespace convnext::image {

// Exactly what PIL.Image.fromarray(arr).resize((out_width, out_height), resample=filter,
// reducing_gap=None) returns, box = the whole image, for an HWC uint8 `arr` of
//   1 channel  → mode "L"     (a 2-D array),
//   2 channels → mode "LA"    (non-NEAREST filters premultiply alpha, as Pillow does via "La"),
//   3 channels → mode "RGB",
//   4 channels → mode "RGBA"  (non-NEAREST filters premultiply alpha, as Pillow does via "RGBa").
// The same size returns a copy. Runs on the library's threads (core/parallel.h); the result does not depend on
// the thread count. Throws convnext::Error for an output size < 1, an empty input, a channel
// count outside 1..4, a pixel buffer of the wrong size or an unknown filter.
Image resize_pil(const Image& in, int64_t out_width, int64_t out_height, Filter filter);

}  // namespace convnext::image
