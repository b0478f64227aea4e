// BMP, following Pillow 9.4's BmpImagePlugin.py and its "raw" decoder (RawDecode.c):
//   * headers of 12 (OS/2 v1), 40, 64, 108 and 124 bytes; a height whose top byte is 0xFF means
//     top-down rows (2^32 - height of them), otherwise bottom-up;
//   * bits 1/4/8 -> palette ("P;1", "P;4", "P"); a palette whose entries are exactly (i, i, i) (or
//     black/white with 2 colours) makes Pillow drop it and read the data as "L" (or "1") instead;
//     16 -> "BGR;15", 24 -> "BGR", 32 -> "BGRX" (the 4th byte ignored);
//   * BI_BITFIELDS for the mask layouts Pillow lists (XBGR, ABGR, RGBA, BGRA, BGR;16 ...);
//   * the row stride comes from the file's bit count, the bytes unpacked per row from the rawmode.
// RLE-compressed BMPs are refused (Pillow decodes them; we do not).
#include <algorithm>
#include <cstring>
#include <vector>

#include "image/decode_internal.h"

namespace convnext::image::detail {
namespace {

uint32_t le16(const uint8_t* p) { return uint32_t{p[0]} | (uint32_t{p[1]} << 8); }
uint32_t le32(const uint8_t* p) { return le16(p) | (le16(p + 2) << 16); }

enum class Raw { Bit1, L, P1, P4, P8, BGR15, BGR16, BGR, BGRX, XBGR, ABGR, RGBA, BGRA };

int raw_bits(Raw r) {
  switch (r) {
    case Raw::Bit1: case Raw::P1: return 1;
    case Raw::P4: return 4;
    case Raw::L: case Raw::P8: return 8;
    case Raw::BGR15: case Raw::BGR16: return 16;
    case Raw::BGR: return 24;
    default: return 32;
  }
}

// Pillow's unpacker for one row, into Src::L (for "1"/"L"), Src::P or Src::RGB.
void unpack_row(Raw r, const uint8_t* in, uint8_t* out, int64_t w) {
  switch (r) {
    case Raw::Bit1:
      for (int64_t x = 0; x < w; ++x) out[x] = (in[x >> 3] >> (7 - (x & 7))) & 1 ? 255 : 0;
      return;
    case Raw::P1:
      for (int64_t x = 0; x < w; ++x) out[x] = (in[x >> 3] >> (7 - (x & 7))) & 1;
      return;
    case Raw::P4:
      for (int64_t x = 0; x < w; ++x) out[x] = (x & 1) ? in[x >> 1] & 0x0f : in[x >> 1] >> 4;
      return;
    case Raw::L:
    case Raw::P8: std::memcpy(out, in, static_cast<size_t>(w)); return;
    case Raw::BGR15:
    case Raw::BGR16:
      for (int64_t x = 0; x < w; ++x, in += 2, out += 3) {
        const unsigned p = in[0] | (in[1] << 8);
        out[2] = static_cast<uint8_t>((p & 31) * 255 / 31);
        if (r == Raw::BGR15) {
          out[1] = static_cast<uint8_t>(((p >> 5) & 31) * 255 / 31);
          out[0] = static_cast<uint8_t>(((p >> 10) & 31) * 255 / 31);
        } else {
          out[1] = static_cast<uint8_t>(((p >> 5) & 63) * 255 / 63);
          out[0] = static_cast<uint8_t>(((p >> 11) & 31) * 255 / 31);
        }
      }
      return;
    case Raw::BGR:
      for (int64_t x = 0; x < w; ++x, in += 3, out += 3) out[0] = in[2], out[1] = in[1], out[2] = in[0];
      return;
    case Raw::BGRX:
    case Raw::BGRA:
      for (int64_t x = 0; x < w; ++x, in += 4, out += 3) out[0] = in[2], out[1] = in[1], out[2] = in[0];
      return;
    case Raw::XBGR:
    case Raw::ABGR:
      for (int64_t x = 0; x < w; ++x, in += 4, out += 3) out[0] = in[3], out[1] = in[2], out[2] = in[1];
      return;
    case Raw::RGBA:
      for (int64_t x = 0; x < w; ++x, in += 4, out += 3) out[0] = in[0], out[1] = in[1], out[2] = in[2];
      return;
  }
}

}  // namespace

Decoded decode_bmp(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  auto truncated = [&](const char* where) { fail(name, std::string("truncated BMP (the file ends inside ") + where + ")"); };
  if (size < 18) truncated("the file header");
  uint64_t offset = le32(data + 10);
  const uint32_t header_size = le32(data + 14);
  if (header_size != 12 && header_size != 40 && header_size != 64 && header_size != 108 && header_size != 124)
    fail(name, "unsupported BMP header type (" + std::to_string(header_size) + " bytes)");
  if (size < 14 + uint64_t{header_size}) truncated("the bitmap header");
  const uint8_t* h = data + 18;  // header_data: header_size - 4 bytes
  uint64_t pos = 14 + uint64_t{header_size};

  int64_t width = 0, height = 0;
  uint32_t bits = 0, compression = 0;
  uint64_t colors = 0;
  int padding = 4;
  bool top_down = false;
  uint32_t mask[4] = {0, 0, 0, 0};
  if (header_size == 12) {
    width = le16(h), height = le16(h + 2), bits = le16(h + 6), padding = 3;
  } else {
    top_down = h[7] == 0xff;
    width = le32(h);
    height = top_down ? (int64_t{1} << 32) - le32(h + 4) : le32(h + 4);
    bits = le16(h + 10), compression = le32(h + 12), colors = le32(h + 28);
    if (compression == 3) {
      if (header_size - 4 >= 52) {
        for (int i = 0; i < 4; ++i) mask[i] = le32(h + 36 + 4 * i);
      } else {  // 40-byte header: three masks follow it
        if (size < pos + 12) truncated("the bitfield masks");
        for (int i = 0; i < 3; ++i) mask[i] = le32(data + pos + 4 * static_cast<uint64_t>(i));
        pos += 12;
      }
    }
  }
  if (colors == 0 && bits <= 8) colors = uint64_t{1} << bits;
  if (offset == 14 + uint64_t{header_size} && bits <= 8) offset += 4 * colors;

  Raw raw;
  switch (bits) {
    case 1: raw = Raw::P1; break;
    case 4: raw = Raw::P4; break;
    case 8: raw = Raw::P8; break;
    case 16: raw = Raw::BGR15; break;
    case 24: raw = Raw::BGR; break;
    case 32: raw = Raw::BGRX; break;
    default: fail(name, "unsupported BMP pixel depth (" + std::to_string(bits) + " bits)");
  }
  if (compression == 3) {
    auto is = [&](uint32_t r, uint32_t g, uint32_t b, uint32_t a) {
      return mask[0] == r && mask[1] == g && mask[2] == b && mask[3] == a;
    };
    if (bits == 32 && is(0xff0000, 0xff00, 0xff, 0)) raw = Raw::BGRX;
    else if (bits == 32 && is(0xff000000, 0xff0000, 0xff00, 0)) raw = Raw::XBGR;
    else if (bits == 32 && is(0xff000000, 0xff0000, 0xff00, 0xff)) raw = Raw::ABGR;
    else if (bits == 32 && is(0xff, 0xff00, 0xff0000, 0xff000000)) raw = Raw::RGBA;
    else if (bits == 32 && (is(0xff0000, 0xff00, 0xff, 0xff000000) || is(0, 0, 0, 0))) raw = Raw::BGRA;
    else if (bits == 24 && mask[0] == 0xff0000 && mask[1] == 0xff00 && mask[2] == 0xff) raw = Raw::BGR;
    else if (bits == 16 && mask[0] == 0xf800 && mask[1] == 0x7e0 && mask[2] == 0x1f) raw = Raw::BGR16;
    else if (bits == 16 && mask[0] == 0x7c00 && mask[1] == 0x3e0 && mask[2] == 0x1f) raw = Raw::BGR15;
    else fail(name, "unsupported BMP bitfields layout");
  } else if (compression == 1 || compression == 2) {
    fail(name, std::string("unsupported BMP compression (") + (compression == 1 ? "RLE8" : "RLE4") + ")");
  } else if (compression != 0) {
    fail(name, "unsupported BMP compression (" + std::to_string(compression) + ")");
  }

  Palette palette = grey_ramp_palette();
  Src src = Src::RGB;
  if (bits <= 8) {
    if (colors == 0 || colors > 65536) fail(name, "unsupported BMP palette size (" + std::to_string(colors) + ")");
    const uint64_t want = static_cast<uint64_t>(padding) * colors;
    const uint64_t got = pos < size ? std::min<uint64_t>(want, size - pos) : 0;
    const uint8_t* pal = data + pos;
    bool grey = true;
    for (uint64_t i = 0; i < colors && grey; ++i) {
      const uint64_t val = colors == 2 ? (i == 0 ? 0 : 255) : (i & 255);
      const uint64_t at = i * static_cast<uint64_t>(padding);
      grey = at + 3 <= got && pal[at] == val && pal[at + 1] == val && pal[at + 2] == val;
    }
    if (grey) {
      raw = colors == 2 ? Raw::Bit1 : Raw::L;
      src = Src::L;
    } else {
      // putpalette: more than 256 entries is an error, the rest of the 256 stays a grey ramp.
      if (got * 8 > 256 * static_cast<uint64_t>(padding * 8)) fail(name, "invalid BMP palette size");
      for (uint64_t i = 0; i < got / static_cast<uint64_t>(padding); ++i) {
        const uint8_t* e = pal + i * static_cast<uint64_t>(padding);
        palette[3 * i] = e[2], palette[3 * i + 1] = e[1], palette[3 * i + 2] = e[0];
      }
      src = Src::P;
    }
    pos += got;
  }
  if (offset == 0) offset = pos;

  check_size(name, width, height, opt);
  const uint64_t stride = ((static_cast<uint64_t>(width) * bits + 31) >> 3) & ~uint64_t{3};
  const uint64_t row_bytes = (static_cast<uint64_t>(width) * static_cast<uint64_t>(raw_bits(raw)) + 7) / 8;
  if (stride < row_bytes) fail(name, "corrupt BMP (rows too short for the pixel format)");
  const unsigned __int128 need = static_cast<unsigned __int128>(height - 1) * stride + row_bytes;
  if (offset > size || need > size - offset) truncated("the pixel data");

  RowConverter conv;
  conv.src = src;
  conv.mode = mode;
  conv.palette = &palette;
  Decoded result;
  result.image = Image(width, height, conv.out_channels());
  std::vector<uint8_t> row(static_cast<size_t>(width) * 3);
  for (int64_t i = 0; i < height; ++i) {
    const int64_t y = top_down ? i : height - 1 - i;
    unpack_row(raw, data + offset + static_cast<uint64_t>(i) * stride, row.data(), width);
    conv.convert(row.data(), result.image.row(y), width);
  }
  return result;
}

}  // namespace convnext::image::detail
