// Image decoding that gives exactly the pixels Pillow 9.4 gives for
//   ImageOps.exif_transpose(Image.open(path)).convert("RGB")   (transformers' load_image)
// and the same with .convert("L") for grey models.
//
// Formats (detected from the bytes, never the extension):
//   JPEG  libjpeg-turbo with Pillow's settings (ISLOW DCT, fancy upsampling, block smoothing);
//         1 component -> L, 3 -> RGB, 4 -> CMYK read as Adobe-inverted (as Pillow always does)
//   PNG   libpng for the samples, Pillow's mode mapping on top: 1/2/4/8-bit grey, grey+alpha,
//         palette (+tRNS), RGB(A), 16-bit (grey becomes Pillow mode "I", so convert clips at 255),
//         Adam7 interlacing; EXIF from eXIf / tEXt "exif" / "Raw profile type exif", XMP orientation
//   WebP  libwebp's WebPAnimDecoder (as Pillow), first frame; EXIF chunk
//   BMP   own reader: 1/4/8-bit palette, 16/24/32-bit, BI_BITFIELDS, bottom-up and top-down
//   PNM   own reader: P1..P6, any maxval (scaled as Pillow does)
// Anything else, or a broken file, throws convnext::Error with one line "<file>: <problem>".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/image.h"

namespace convnext::image {

struct DecodeOptions {
  bool exif_transpose = true;    // apply EXIF orientation 2..8 as ImageOps.exif_transpose
  int64_t max_pixels = 89478485;  // Pillow's Image.MAX_IMAGE_PIXELS; 0 = no limit. Checked before decoding.
};

enum class ColorMode { RGB, L };

// Reads and decodes an image file (format detected from the bytes, not the extension) and converts it to
// RGB (3 channels) or L (1 channel) exactly as Pillow's convert("RGB") / convert("L").
Image load_image(const std::string& path, ColorMode mode = ColorMode::RGB, const DecodeOptions& = {});

// The same from bytes in memory; name_for_errors starts every error message.
Image decode_image(const uint8_t* data, size_t size, const std::string& name_for_errors, ColorMode mode,
                   const DecodeOptions&);

}  // namespace convnext::image
