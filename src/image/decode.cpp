// Format detection, Pillow's convert("RGB") / convert("L") per row, load_image / decode_image.
#include "image/decode.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "convnext/error.h"
#include "image/decode_internal.h"

namespace convnext::image {
namespace detail {

void fail(const std::string& name, const std::string& problem) { throw Error(name + ": " + problem); }

void check_size(const std::string& name, int64_t w, int64_t h, const DecodeOptions& options) {
  if (w <= 0 || h <= 0)
    fail(name, "image has no pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  // w, h < 2^32 in every format, so the product fits in unsigned 64 bits.
  const uint64_t pixels = static_cast<uint64_t>(w) * static_cast<uint64_t>(h);
  if (options.max_pixels > 0 && pixels > static_cast<uint64_t>(options.max_pixels))
    fail(name, "image of " + std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(pixels) +
                   " pixels exceeds the limit of " + std::to_string(options.max_pixels) +
                   " (decompression bomb?); raise it with --max-pixels");
}

Palette grey_ramp_palette() {
  Palette p;
  for (int i = 0; i < 256; ++i) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = static_cast<uint8_t>(i);
  return p;
}

int RowConverter::bytes_per_pixel(Src s) {
  switch (s) {
    case Src::L:
    case Src::P: return 1;
    case Src::LA:
    case Src::I16BE: return 2;
    case Src::RGB: return 3;
    case Src::RGBA:
    case Src::CMYK: return 4;
  }
  return 1;
}

namespace {

// Convert.c: L24(rgb) >> 16, ITU-R 601-2 luma in 16.16 fixed point.
inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return static_cast<uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

// Convert.c cmyk2rgb: nk = 255 - k; out = CLIP8(nk - MULDIV255(c, nk)).
inline uint8_t cmyk_channel(int c, int nk) {
  int tmp = c * nk + 128;
  const int v = nk - (((tmp >> 8) + tmp) >> 8);
  return static_cast<uint8_t>(v <= 0 ? 0 : v < 256 ? v : 255);
}

// Convert.c i2rgb / i2l: clip the 32-bit value to 0..255 (so 16-bit grey saturates at 255).
inline uint8_t clip_i(unsigned v) { return static_cast<uint8_t>(v >= 255 ? 255 : v); }

}  // namespace

void RowConverter::convert(const uint8_t* in, uint8_t* out, int64_t n) const {
  if (mode == ColorMode::RGB) {
    switch (src) {
      case Src::L:  // l2rgb
        for (int64_t x = 0; x < n; ++x, out += 3) out[0] = out[1] = out[2] = in[x];
        return;
      case Src::LA:  // la2rgb (alpha dropped, not composited)
        for (int64_t x = 0; x < n; ++x, out += 3, in += 2) out[0] = out[1] = out[2] = in[0];
        return;
      case Src::P:  // p2rgb
        for (int64_t x = 0; x < n; ++x, out += 3) std::memcpy(out, palette->data() + 3 * in[x], 3);
        return;
      case Src::RGB: std::memcpy(out, in, static_cast<size_t>(n) * 3); return;
      case Src::RGBA:  // rgba2rgb
        for (int64_t x = 0; x < n; ++x, out += 3, in += 4) out[0] = in[0], out[1] = in[1], out[2] = in[2];
        return;
      case Src::CMYK:
        for (int64_t x = 0; x < n; ++x, out += 3, in += 4) {
          const int nk = 255 - in[3];
          out[0] = cmyk_channel(in[0], nk), out[1] = cmyk_channel(in[1], nk), out[2] = cmyk_channel(in[2], nk);
        }
        return;
      case Src::I16BE:
        for (int64_t x = 0; x < n; ++x, out += 3, in += 2) out[0] = out[1] = out[2] = clip_i((in[0] << 8) | in[1]);
        return;
    }
  } else {
    switch (src) {
      case Src::L: std::memcpy(out, in, static_cast<size_t>(n)); return;
      case Src::LA:  // la2l
        for (int64_t x = 0; x < n; ++x, in += 2) out[x] = in[0];
        return;
      case Src::P:  // p2l
        for (int64_t x = 0; x < n; ++x) {
          const uint8_t* c = palette->data() + 3 * in[x];
          out[x] = luma(c[0], c[1], c[2]);
        }
        return;
      case Src::RGB:  // rgb2l
        for (int64_t x = 0; x < n; ++x, in += 3) out[x] = luma(in[0], in[1], in[2]);
        return;
      case Src::RGBA:
        for (int64_t x = 0; x < n; ++x, in += 4) out[x] = luma(in[0], in[1], in[2]);
        return;
      case Src::CMYK:  // no CMYK->L converter: Pillow goes through RGB (getmodebase)
        for (int64_t x = 0; x < n; ++x, in += 4) {
          const int nk = 255 - in[3];
          out[x] = luma(cmyk_channel(in[0], nk), cmyk_channel(in[1], nk), cmyk_channel(in[2], nk));
        }
        return;
      case Src::I16BE:
        for (int64_t x = 0; x < n; ++x, in += 2) out[x] = clip_i((in[0] << 8) | in[1]);
        return;
    }
  }
}

}  // namespace detail

namespace {

bool starts_with(const uint8_t* d, size_t n, const char* magic, size_t m) {
  return n >= m && std::memcmp(d, magic, m) == 0;
}

// A short name for formats we recognise but do not decode, for the error message.
const char* unsupported_format_name(const uint8_t* d, size_t n) {
  if (starts_with(d, n, "GIF87a", 6) || starts_with(d, n, "GIF89a", 6)) return "GIF";
  if (starts_with(d, n, "II*\0", 4) || starts_with(d, n, "MM\0*", 4)) return "TIFF";
  if (starts_with(d, n, "\0\0\1\0", 4)) return "ICO";
  if (starts_with(d, n, "8BPS", 4)) return "PSD";
  if (starts_with(d, n, "qoif", 4)) return "QOI";
  if (starts_with(d, n, "\0\0\0\x0cjP  ", 8) || starts_with(d, n, "\xff\x4f\xff\x51", 4)) return "JPEG 2000";
  if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) {
    if (std::memcmp(d + 8, "avif", 4) == 0 || std::memcmp(d + 8, "avis", 4) == 0) return "AVIF";
    return "HEIF/HEIC";
  }
  if (starts_with(d, n, "RIFF", 4) && n >= 12 && std::memcmp(d + 8, "WEBP", 4) == 0) return "WebP with an unknown first chunk";
  return nullptr;
}

// The signatures Pillow's plugins accept (their _accept functions).
detail::Decoded decode_by_signature(const uint8_t* data, size_t size, const std::string& name, ColorMode mode,
                                    const DecodeOptions& opt) {
  using namespace detail;
  if (starts_with(data, size, "BM", 2)) return decode_bmp(data, size, name, mode, opt);
  if (starts_with(data, size, "\xff\xd8\xff", 3)) return decode_jpeg(data, size, name, mode, opt);
  if (size >= 2 && data[0] == 'P' && data[1] != 0 && std::strchr("0123456y", data[1]) != nullptr)
    return decode_pnm(data, size, name, mode, opt);
  if (starts_with(data, size, "\x89PNG\r\n\x1a\n", 8)) return decode_png(data, size, name, mode, opt);
  if (size >= 16 && starts_with(data, size, "RIFF", 4) && std::memcmp(data + 8, "WEBP", 4) == 0 &&
      (std::memcmp(data + 12, "VP8 ", 4) == 0 || std::memcmp(data + 12, "VP8L", 4) == 0 ||
       std::memcmp(data + 12, "VP8X", 4) == 0))
    return decode_webp(data, size, name, mode, opt);
  if (const char* other = unsupported_format_name(data, size))
    fail(name, std::string("unsupported image format (") + other + "); supported: JPEG, PNG, WebP, BMP, PNM (PBM/PGM/PPM)");
  fail(name, "not an image file (unrecognised format; supported: JPEG, PNG, WebP, BMP, PNM)");
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  using namespace detail;
  if (size == 0 || data == nullptr) fail(name, "empty file (0 bytes), not an image");
  Decoded d;
  try {
    d = decode_by_signature(data, size, name, mode, opt);
  } catch (const std::bad_alloc&) {  // only reachable with max_pixels = 0 or a huge limit
    fail(name, "out of memory while decoding the image");
  } catch (const std::length_error&) {
    fail(name, "out of memory while decoding the image");
  }
  if (opt.exif_transpose && d.orientation != 1) return apply_orientation(d.image, d.orientation);
  return std::move(d.image);
}

Image load_image(const std::string& path, ColorMode mode, const DecodeOptions& opt) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open image file: " + std::strerror(errno));
  struct stat st {};
  const bool have_stat = ::fstat(::fileno(f.get()), &st) == 0;
  if (have_stat && S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not an image file");
  std::vector<uint8_t> bytes;
  try {
    if (have_stat && S_ISREG(st.st_mode) && st.st_size > 0) {  // one read of the known size
      bytes.resize(static_cast<size_t>(st.st_size));
      bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f.get()));
    }
    uint8_t buf[1 << 16];  // the rest (a pipe, or a file that grew meanwhile)
    for (size_t got; (got = std::fread(buf, 1, sizeof buf, f.get())) > 0;) bytes.insert(bytes.end(), buf, buf + got);
  } catch (const std::bad_alloc&) {
    throw Error(path + ": file too large to read into memory");
  }
  if (std::ferror(f.get())) throw Error(path + ": error reading image file: " + std::strerror(errno));
  return decode_image(bytes.data(), bytes.size(), path, mode, opt);
}

}  // namespace convnext::image
