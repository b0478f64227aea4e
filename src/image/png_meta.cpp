// PNG metadata as PngImagePlugin 9.4 collects it into im.info (chunk_eXIf, chunk_tEXt, chunk_zTXt,
// chunk_iTXt), reduced to the keys Image.getexif() reads. See png_meta.h.
#include "image/png_meta.h"

#include <zlib.h>

#include <cstring>
#include <string>

#include "image/decode_internal.h"

namespace convnext::image::detail {
namespace {

constexpr size_t kMaxTextChunk = 1 << 20;  // PngImagePlugin.MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK)

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool is_cid(const uint8_t* t) {  // re.compile(rb"\w\w\w\w").match
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = t[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// The info keys getexif() looks at.
struct Info {
  bool has_exif = false, exif_is_bytes = false;
  std::string exif;
  bool has_raw_profile = false;
  std::string raw_profile;
  bool has_xmp = false;
  std::string xmp;

  void set(const std::string& key, std::string value, bool bytes_value) {
    if (key == "exif") {
      has_exif = true, exif_is_bytes = bytes_value, exif = std::move(value);
    } else if (key == "Raw profile type exif") {
      has_raw_profile = true, raw_profile = std::move(value);
    } else if (key == "XML:com.adobe.xmp") {
      has_xmp = true, xmp = std::move(value);
    }
  }
};

// _safe_zlib_decompress: decompressobj().decompress(s, MAX_TEXT_CHUNK). A truncated stream gives what
// it decodes; returns false for a zlib error or more than MAX_TEXT_CHUNK bytes of output (Pillow
// raises ValueError there; we ignore the chunk).
bool inflate_text(const uint8_t* in, size_t n, std::string& out) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit(&zs) != Z_OK) return false;
  out.assign(kMaxTextChunk, '\0');
  zs.next_in = const_cast<Bytef*>(in);
  zs.avail_in = static_cast<uInt>(n);
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  const size_t produced = out.size() - zs.avail_out;
  const bool full = zs.avail_out == 0 && rc != Z_STREAM_END;
  inflateEnd(&zs);
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR) return false;
  if (full && zs.avail_in > 0) return false;  // "Decompressed Data Too Large"
  out.resize(produced);
  return true;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<uint8_t>(s[i + static_cast<size_t>(k)]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += static_cast<size_t>(len);
  }
  return true;
}

// Returns false when Pillow's handler would raise SyntaxError (which ends load_end's loop).
bool handle_chunk(Info& info, const char* type, const uint8_t* d, size_t n) {
  const std::string s(reinterpret_cast<const char*>(d), n);
  if (std::memcmp(type, "eXIf", 4) == 0) {
    info.set("exif", std::string("Exif\0\0", 6) + s, true);
  } else if (std::memcmp(type, "tEXt", 4) == 0) {
    const size_t z = s.find('\0');
    const std::string k = s.substr(0, z), v = z == std::string::npos ? std::string() : s.substr(z + 1);
    if (!k.empty()) info.set(k, v, true);  // only "exif" keeps bytes; others are latin-1 text
  } else if (std::memcmp(type, "zTXt", 4) == 0) {
    const size_t z = s.find('\0');
    const std::string k = s.substr(0, z), v = z == std::string::npos ? std::string() : s.substr(z + 1);
    if (!v.empty() && v[0] != 0) return false;  // "Unknown compression method"
    std::string text;
    if (v.size() > 1 && !inflate_text(reinterpret_cast<const uint8_t*>(v.data()) + 1, v.size() - 1, text)) text.clear();
    if (!k.empty()) info.set(k, text, false);
  } else if (std::memcmp(type, "iTXt", 4) == 0) {
    const size_t z = s.find('\0');
    if (z == std::string::npos) return true;
    const std::string k = s.substr(0, z), r = s.substr(z + 1);
    if (r.size() < 2) return true;
    const auto cf = static_cast<uint8_t>(r[0]), cm = static_cast<uint8_t>(r[1]);
    const std::string rest = r.substr(2);
    const size_t z1 = rest.find('\0');
    if (z1 == std::string::npos) return true;
    const size_t z2 = rest.find('\0', z1 + 1);
    if (z2 == std::string::npos) return true;
    const std::string lang = rest.substr(0, z1), tk = rest.substr(z1 + 1, z2 - z1 - 1);
    std::string v = rest.substr(z2 + 1);
    if (cf != 0) {
      if (cm != 0) return true;
      std::string text;
      if (!inflate_text(reinterpret_cast<const uint8_t*>(v.data()), v.size(), text)) return true;
      v = std::move(text);
    }
    if (!valid_utf8(lang) || !valid_utf8(tk) || !valid_utf8(v)) return true;
    info.set(k, v, false);
  }
  return true;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytes.fromhex("".join(text.split("\n")[3:])); false where Python raises ValueError.
bool raw_profile_bytes(const std::string& text, std::string& out) {
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    pos = text.find('\n', pos);
    if (pos == std::string::npos) return out.clear(), true;  // fewer than 4 lines: empty
    ++pos;
  }
  std::string hex;
  for (size_t i = pos; i < text.size(); ++i)
    if (text[i] != '\n') hex.push_back(text[i]);
  out.clear();
  for (size_t i = 0; i < hex.size();) {
    const char c = hex[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      ++i;
      continue;
    }
    if (i + 1 >= hex.size()) return false;
    const int hi = hexval(c), lo = hexval(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

int xmp_orientation(const std::string& xmp) {  // re.search(r'tiff:Orientation(="|>)([0-9])', xmp)
  static const char kKey[] = "tiff:Orientation";
  for (size_t p = xmp.find(kKey); p != std::string::npos; p = xmp.find(kKey, p + 1)) {
    size_t q = p + sizeof kKey - 1;
    if (q < xmp.size() && xmp[q] == '>') {
      q += 1;
    } else if (q + 1 < xmp.size() && xmp[q] == '=' && xmp[q + 1] == '"') {
      q += 2;
    } else {
      continue;
    }
    if (q < xmp.size() && xmp[q] >= '0' && xmp[q] <= '9') return xmp[q] - '0';
  }
  return 0;
}

int orientation_from(const Info& info) {
  ExifOrientation o;
  if (info.has_exif) {
    // A str value (zTXt/iTXt keyed "exif") makes Pillow's Exif.load raise; we read no orientation.
    if (info.exif_is_bytes) o = exif_orientation(reinterpret_cast<const uint8_t*>(info.exif.data()), info.exif.size());
  } else if (info.has_raw_profile) {
    std::string bytes;
    if (raw_profile_bytes(info.raw_profile, bytes))
      o = exif_orientation(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  if (o.present) return usable_orientation(o.value);
  return info.has_xmp ? usable_orientation(xmp_orientation(info.xmp)) : 1;
}

}  // namespace

PngMeta png_metadata(const uint8_t* data, size_t size) {
  PngMeta meta;
  Info info, before_idat;
  bool seen_idat = false;
  // APNG: an animated file stops load_end at the first fcTL after the image data.
  bool actl = false, fctl_before_idat = false;
  uint32_t num_frames = 0;
  for (size_t pos = 8; size >= 8 && pos <= size - 8;) {
    const uint32_t len = be32(data + pos);
    const char* type = reinterpret_cast<const char*>(data + pos + 4);
    if (!is_cid(data + pos + 4) || std::memcmp(type, "IEND", 4) == 0) break;
    const bool idat = std::memcmp(type, "IDAT", 4) == 0;
    if (seen_idat && std::memcmp(type, "fcTL", 4) == 0 && actl && num_frames + (fctl_before_idat ? 0 : 1) > 1) break;
    if (len > size - pos - 8) {
      // Before IDAT libpng has already refused such a file. A cut-short IDAT is libpng's call (Pillow
      // stops reading once it has the last row); any other chunk after it makes load_end raise.
      if (seen_idat && !idat) meta.truncated_tail = true;
      break;
    }
    const uint8_t* d = data + pos + 8;
    if (!seen_idat && std::memcmp(type, "acTL", 4) == 0 && len >= 4) actl = true, num_frames = be32(d);
    if (!seen_idat && std::memcmp(type, "fcTL", 4) == 0) fctl_before_idat = true;
    if (idat) {
      if (!seen_idat) before_idat = info;
      seen_idat = true;
    } else if (!handle_chunk(info, type, d, len)) {
      if (!seen_idat) meta.bad_ztxt = true;
      break;
    }
    pos += 8 + static_cast<size_t>(len) + 4;  // data and CRC; pos may now pass size, ending the loop
  }
  if (!seen_idat) before_idat = info;
  meta.orientation = orientation_from(before_idat.has_exif ? before_idat : info);
  return meta;
}

}  // namespace convnext::image::detail
