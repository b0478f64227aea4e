// PNM (PBM/PGM/PPM), following Pillow 9.4's PpmImagePlugin.py:
//   * header tokens read byte by byte as _read_magic/_read_token do ('#' comments to end of line,
//     tokens of at most 10 bytes, parsed like Python int());
//   * P4 -> "1" ("1;I": set bits are black), P5/P6 with maxval 255 -> "L"/"RGB" bytes,
//     P5 with maxval 65535 -> "I" (16-bit big-endian), other maxvals through PpmDecoder:
//     round(v / maxval * 255) (or * 65535 into "I" for P5 with maxval > 255), Python's round (half to even);
//   * P1/P2/P3 plain text through PpmPlainDecoder.
// Mode "I" saturates at 255 in convert("RGB"/"L"), exactly as in Pillow.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "image/decode_internal.h"

namespace convnext::image::detail {
namespace {

bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// Python int() of a short bytes token: optional sign, decimal digits, single '_' between digits.
bool py_int(const std::string& t, int64_t& v) {
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  if (i >= t.size()) return false;
  v = 0;
  bool prev_digit = false;
  for (; i < t.size(); ++i) {
    if (t[i] >= '0' && t[i] <= '9') {
      v = v * 10 + (t[i] - '0');
      prev_digit = true;
    } else if (t[i] == '_' && prev_digit && i + 1 < t.size()) {
      prev_digit = false;
    } else {
      return false;
    }
  }
  if (!prev_digit) return false;
  if (neg) v = -v;
  return true;
}

struct Header {
  const uint8_t* d;
  size_t n;
  size_t pos = 0;
  int get() { return pos < n ? d[pos++] : -1; }

  std::string magic() {  // _read_magic
    std::string m;
    for (int i = 0; i < 6; ++i) {
      const int c = get();
      if (c < 0 || is_space(c)) break;
      m.push_back(static_cast<char>(c));
    }
    return m;
  }
  // _read_token; returns "" at EOF with nothing read, and an 11-byte token when too long.
  std::string token() {
    std::string t;
    while (t.size() <= 10) {
      const int c = get();
      if (c < 0) break;
      if (is_space(c)) {
        if (t.empty()) continue;
        break;
      }
      if (c == '#') {
        for (int e = get(); e >= 0 && e != '\r' && e != '\n'; e = get()) {
        }
        continue;
      }
      t.push_back(static_cast<char>(c));
    }
    return t;
  }
};

// Python's round(value / maxval * out_max), half to even (nearbyint under the default rounding mode).
int64_t scale(int64_t value, int64_t maxval, int64_t out_max) {
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(value) / static_cast<double>(maxval) * static_cast<double>(out_max)));
}

// The bytes after the header with '#' comments removed as PpmPlainDecoder._ignore_comments does
// (each comment and the CR/LF ending it vanish, joining what surrounds it).
std::string strip_comments(const uint8_t* d, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (d[i] != '#') {
      out.push_back(static_cast<char>(d[i]));
      continue;
    }
    while (i < n && d[i] != '\n' && d[i] != '\r') ++i;
  }
  return out;
}

}  // namespace

Decoded decode_pnm(const uint8_t* data, size_t size, const std::string& name, ColorMode mode, const DecodeOptions& opt) {
  Header hd{data, size};
  const std::string magic = hd.magic();
  if (magic.size() != 2 || magic[0] != 'P' || magic[1] < '1' || magic[1] > '6')
    fail(name, "unsupported PNM variant '" + magic + "' (supported: P1..P6)");
  const int kind = magic[1] - '0';
  const bool bitmap = kind == 1 || kind == 4, plain = kind <= 3, colour = kind == 3 || kind == 6;

  int64_t v[3] = {0, 0, 255};
  for (int i = 0; i < (bitmap ? 2 : 3); ++i) {
    const std::string t = hd.token();
    if (t.empty()) fail(name, "truncated PNM (the file ends inside the header)");
    if (t.size() > 10) fail(name, "corrupt PNM header (token too long)");
    if (!py_int(t, v[i])) fail(name, "corrupt PNM header (" + t + " is not a number)");
  }
  const int64_t width = v[0], height = v[1], maxval = v[2];
  if (!bitmap && !(maxval > 0 && maxval < 65536)) fail(name, "corrupt PNM header (maxval must be 1..65535)");
  check_size(name, width, height, opt);

  // Pillow's mode: "1", "L", "I" (grey with maxval > 255) or "RGB".
  const bool mode_i = !colour && !bitmap && maxval > 255;
  RowConverter conv;
  conv.src = colour ? Src::RGB : mode_i ? Src::I16BE : Src::L;
  conv.mode = mode;
  const int bands = colour ? 3 : 1;
  const int64_t out_max = mode_i ? 65535 : 255;
  const size_t samples = static_cast<size_t>(width * height * bands);
  // Samples in Pillow's mode: 1 byte ("1"/"L"/"RGB") or 2 big-endian bytes ("I").
  std::vector<uint8_t> pix(samples * (mode_i ? 2 : 1));
  auto put = [&](size_t i, int64_t value) {
    if (mode_i) {
      pix[2 * i] = static_cast<uint8_t>(value >> 8), pix[2 * i + 1] = static_cast<uint8_t>(value);
    } else {
      pix[i] = static_cast<uint8_t>(value & 255);  // o8(value)
    }
  };
  const uint8_t* body = data + hd.pos;
  const size_t avail = size - hd.pos;
  const char* short_data = "truncated PNM (not enough image data)";

  if (kind == 4) {  // raw "1;I"
    const size_t row = static_cast<size_t>((width + 7) / 8);
    if (avail / row < static_cast<size_t>(height)) fail(name, short_data);
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        pix[static_cast<size_t>(y * width + x)] = (body[static_cast<size_t>(y) * row + static_cast<size_t>(x >> 3)] >> (7 - (x & 7))) & 1 ? 0 : 255;
  } else if (kind == 1) {  // PpmPlainDecoder._decode_bitonal
    const std::string text = strip_comments(body, avail);
    size_t i = 0;
    for (char c : text) {
      if (is_space(static_cast<uint8_t>(c))) continue;
      if (c != '0' && c != '1') fail(name, std::string("corrupt PBM data (invalid token '") + c + "')");
      if (i < samples) pix[i++] = c == '1' ? 0 : 255;
    }
    if (i < samples) fail(name, short_data);
  } else if (plain) {  // PpmPlainDecoder._decode_blocks
    const std::string text = strip_comments(body, avail);
    size_t i = 0, p = 0;
    while (i < samples) {
      while (p < text.size() && is_space(static_cast<uint8_t>(text[p]))) ++p;
      if (p >= text.size()) fail(name, short_data);
      size_t e = p;
      while (e < text.size() && !is_space(static_cast<uint8_t>(text[e]))) ++e;
      const std::string t = text.substr(p, e - p);
      p = e;
      int64_t value = 0;
      if (t.size() > 10) fail(name, "corrupt PNM data (token too long)");
      if (!py_int(t, value)) fail(name, "corrupt PNM data (" + t + " is not a number)");
      if (value > maxval) fail(name, "corrupt PNM data (value " + t + " exceeds maxval)");
      value = scale(value, maxval, out_max);
      if (mode_i && value < 0) fail(name, "corrupt PNM data (negative value)");
      put(i++, value);
    }
  } else if (maxval == 255 || (maxval == 65535 && !colour)) {  // raw decoder
    if (avail < pix.size()) fail(name, short_data);
    std::memcpy(pix.data(), body, pix.size());
  } else {  // PpmDecoder
    const size_t in_bytes = maxval < 256 ? 1 : 2;
    if (avail / in_bytes < samples) fail(name, short_data);
    for (size_t i = 0; i < samples; ++i) {
      const int64_t raw = in_bytes == 1 ? body[i] : (body[2 * i] << 8) | body[2 * i + 1];
      put(i, std::min(out_max, scale(raw, maxval, out_max)));
    }
  }

  Decoded result;
  result.image = Image(width, height, conv.out_channels());
  const int64_t in_stride = width * conv.in_bytes();
  for (int64_t y = 0; y < height; ++y) conv.convert(pix.data() + y * in_stride, result.image.row(y), width);
  return result;
}

}  // namespace convnext::image::detail
