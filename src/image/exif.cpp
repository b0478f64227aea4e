// EXIF orientation the way Pillow 9.4 reads it (Image.Exif.load -> TiffImagePlugin.
// ImageFileDirectory_v2.load, then exif.get(0x0112)), and the transposes of ImageOps.exif_transpose.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "image/decode_internal.h"

namespace convnext::image::detail {
namespace {

struct Reader {
  const uint8_t* d;
  size_t n;
  bool le;
  bool has(uint64_t off, uint64_t len) const { return off <= n && len <= n - off; }
  uint64_t u(uint64_t off, int bytes) const {  // caller checked has(off, bytes)
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      const uint64_t b = d[off + static_cast<uint64_t>(i)];
      v |= le ? b << (8 * i) : b << (8 * (bytes - 1 - i));
    }
    return v;
  }
};

// Bytes per value of the TIFF types Pillow loads (_load_dispatch); 0 = skipped as unsupported.
int unit_size(unsigned type) {
  switch (type) {
    case 1: case 2: case 6: case 7: return 1;   // BYTE ASCII SBYTE UNDEFINED
    case 3: case 8: return 2;                   // SHORT SSHORT
    case 4: case 9: case 11: case 13: return 4;  // LONG SLONG FLOAT IFD
    case 5: case 10: case 12: case 16: return 8;  // RATIONAL SRATIONAL DOUBLE LONG8
    default: return 0;
  }
}

// The first value of the tag as Python would compare it with the ints 2..8 of exif_transpose's table.
int64_t first_value_as_int(const Reader& r, unsigned type, const uint8_t* p) {
  Reader v{p, 8, r.le};
  auto from_double = [](double x) -> int64_t {
    if (!std::isfinite(x) || x != std::floor(x) || std::fabs(x) > 1e15) return 0;
    return static_cast<int64_t>(x);
  };
  switch (type) {
    case 3: return static_cast<int64_t>(v.u(0, 2));
    case 4: case 13: return static_cast<int64_t>(v.u(0, 4));
    case 16: { const uint64_t x = v.u(0, 8); return x > 1000000 ? 0 : static_cast<int64_t>(x); }
    case 6: return static_cast<int8_t>(v.u(0, 1));
    case 8: return static_cast<int16_t>(v.u(0, 2));
    case 9: return static_cast<int32_t>(v.u(0, 4));
    case 5: {  // IFDRational(num, den): hash/eq of Fraction, NaN when den == 0
      const uint64_t num = v.u(0, 4), den = v.u(4, 4);
      return den != 0 && num % den == 0 ? static_cast<int64_t>(num / den) : 0;
    }
    case 10: {
      const int64_t num = static_cast<int32_t>(v.u(0, 4)), den = static_cast<int32_t>(v.u(4, 4));
      return den != 0 && num % den == 0 ? num / den : 0;
    }
    case 11: { uint32_t b = static_cast<uint32_t>(v.u(0, 4)); float f; std::memcpy(&f, &b, 4); return from_double(f); }
    case 12: { uint64_t b = v.u(0, 8); double f; std::memcpy(&f, &b, 8); return from_double(f); }
    default: return 0;  // BYTE / UNDEFINED give bytes, ASCII a str: never equal to an int
  }
}

}  // namespace

ExifOrientation exif_orientation(const uint8_t* data, size_t size) {
  ExifOrientation result;
  if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) data += 6, size -= 6;
  if (size < 8) return result;  // Pillow: no data, or a struct.error; either way no orientation
  // TiffImagePlugin.PREFIXES; "II+\0" is BigTIFF, whose 8-byte header Pillow cannot parse here.
  bool le;
  if (std::memcmp(data, "II\x2a\0", 4) == 0 || std::memcmp(data, "II\0\x2a", 4) == 0) {
    le = true;
  } else if (std::memcmp(data, "MM\0\x2a", 4) == 0 || std::memcmp(data, "MM\x2a\0", 4) == 0 ||
             std::memcmp(data, "MM\0\x2b", 4) == 0) {
    le = false;
  } else {
    return result;
  }
  const Reader r{data, size, le};
  const uint64_t ifd = r.u(4, 4);
  if (!r.has(ifd, 2)) return result;  // OSError in load(): warning, empty directory
  const uint64_t count = r.u(ifd, 2);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + 2 + 12 * i;
    if (!r.has(e, 12)) break;  // OSError: stop, keeping the tags read so far
    const unsigned tag = static_cast<unsigned>(r.u(e, 2)), type = static_cast<unsigned>(r.u(e + 2, 2));
    const uint64_t n = r.u(e + 4, 4);
    const int unit = unit_size(type);
    if (unit == 0) continue;
    const uint64_t bytes = n * static_cast<uint64_t>(unit);
    const uint8_t* value = data + e + 8;
    if (bytes > 4) {
      const uint64_t off = r.u(e + 8, 4);
      if (!r.has(off, bytes)) break;  // _safe_read short: OSError, stop
      value = data + off;
    }
    if (bytes == 0) continue;  // empty data: skipped
    if (tag != 0x0112) continue;
    result.present = true;
    // Orientation is a known tag with one value: Pillow keeps the first one.
    uint8_t first[8] = {0};
    std::memcpy(first, value, static_cast<size_t>(std::min<uint64_t>(bytes, 8)));
    result.value = first_value_as_int(r, type, first);
  }
  return result;
}

Image apply_orientation(const Image& in, int orientation) {
  const int64_t w = in.width, h = in.height, c = in.channels;
  const bool swap = orientation >= 5;
  Image out(swap ? h : w, swap ? w : h, c);
  // The source of output pixel (x, y) is (sx, sy) = (x0 + xx*x + xy*y, y0 + yx*x + yy*y), per
  // Image.transpose for the method exif_transpose picks.
  int64_t x0 = 0, xx = 1, xy = 0, y0 = 0, yx = 0, yy = 1;
  switch (orientation) {
    case 2: x0 = w - 1, xx = -1; break;                                  // FLIP_LEFT_RIGHT
    case 3: x0 = w - 1, xx = -1, y0 = h - 1, yy = -1; break;             // ROTATE_180
    case 4: y0 = h - 1, yy = -1; break;                                  // FLIP_TOP_BOTTOM
    case 5: xx = 0, xy = 1, yx = 1, yy = 0; break;                       // TRANSPOSE
    case 6: xx = 0, xy = 1, y0 = h - 1, yx = -1, yy = 0; break;          // ROTATE_270 (clockwise)
    case 7: x0 = w - 1, xx = 0, xy = -1, y0 = h - 1, yx = -1, yy = 0; break;  // TRANSVERSE
    case 8: x0 = w - 1, xx = 0, xy = -1, yx = 1, yy = 0; break;          // ROTATE_90 (counter-clockwise)
    default: break;
  }
  const int64_t step = (xx + yx * w) * c;  // source bytes per output pixel
  const uint8_t* src = in.pixels.data();
  for (int64_t y = 0; y < out.height; ++y) {
    int64_t s = ((y0 + yy * y) * w + (x0 + xy * y)) * c;  // offsets, not pointers: they may step below 0 at the end
    uint8_t* o = out.row(y);
    if (c == 3) {
      for (int64_t x = 0; x < out.width; ++x, o += 3, s += step) o[0] = src[s], o[1] = src[s + 1], o[2] = src[s + 2];
    } else {
      for (int64_t x = 0; x < out.width; ++x, o += c, s += step) std::memcpy(o, src + s, static_cast<size_t>(c));
    }
  }
  return out;
}

}  // namespace convnext::image::detail
