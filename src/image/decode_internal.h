// Shared pieces of the image decoders (not part of the public API).
//
// Every decoder turns its file into rows of one of Pillow's in-memory modes (after Pillow's
// "unpacker" for that file type), and RowConverter then applies Pillow's convert("RGB") or
// convert("L") to each row, so no full-size intermediate image is kept.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/decode.h"

namespace convnext::image::detail {

[[noreturn]] void fail(const std::string& name, const std::string& problem);

// Throws unless 0 < w, 0 < h and w*h <= options.max_pixels (when set). Call before allocating.
void check_size(const std::string& name, int64_t w, int64_t h, const DecodeOptions& options);

// Pillow image modes as a decoder delivers them (one row at a time).
enum class Src {
  L,      // 1 byte: "L", and "1" already expanded to 0/255
  LA,     // 2 bytes: "LA"
  P,      // 1 byte index into a 256-entry RGB palette
  RGB,    // 3 bytes
  RGBA,   // 4 bytes: "RGBA" or "RGBX" (the 4th byte is ignored by convert)
  CMYK,   // 4 bytes: Pillow's CMYK image (for JPEG: after the "CMYK;I" inversion)
  I16BE,  // 2 bytes big-endian: Pillow mode "I" holding 0..65535 (16-bit grey PNG / PNM)
};

using Palette = std::array<uint8_t, 256 * 3>;

// Pillow's ImagingPaletteNew: a grey ramp, so indices past the file's palette give (i, i, i).
Palette grey_ramp_palette();

struct RowConverter {
  Src src = Src::RGB;
  ColorMode mode = ColorMode::RGB;
  const Palette* palette = nullptr;  // for Src::P

  static int bytes_per_pixel(Src s);
  int in_bytes() const { return bytes_per_pixel(src); }
  int out_channels() const { return mode == ColorMode::RGB ? 3 : 1; }
  // True when a row is already in the output layout (decoders may then write straight into the image).
  bool identity() const {
    return (src == Src::RGB && mode == ColorMode::RGB) || (src == Src::L && mode == ColorMode::L);
  }
  void convert(const uint8_t* in, uint8_t* out, int64_t n) const;
};

// A decoder's result: converted pixels plus the EXIF orientation Pillow would read (1 = none).
struct Decoded {
  Image image;
  int orientation = 1;
};

Decoded decode_jpeg(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt);
Decoded decode_png(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt);
Decoded decode_webp(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt);
Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt);
Decoded decode_pnm(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt);

// ---- EXIF (exif.cpp) ----------------------------------------------------------------------------

// What Pillow's Exif.load + exif.get(0x0112) yield for an EXIF blob (a leading "Exif\0\0" is
// stripped, as Pillow does): present = IFD0 holds tag 0x0112 with a supported type; value = its
// first value when that compares equal to an integer (SHORT, LONG, RATIONAL 6/1, DOUBLE 6.0, ...),
// else 0. Never reads outside [data, data + size).
struct ExifOrientation {
  bool present = false;
  int64_t value = 0;
};
ExifOrientation exif_orientation(const uint8_t* data, size_t size);

// The orientation ImageOps.exif_transpose acts on: value if 2..8, else 1.
inline int usable_orientation(int64_t v) { return v >= 2 && v <= 8 ? static_cast<int>(v) : 1; }

// Image.transpose for the method exif_transpose picks for orientation o (2..8); a copy for o = 1.
Image apply_orientation(const Image& in, int orientation);

}  // namespace convnext::image::detail
