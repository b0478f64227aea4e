#include "io/file_kind.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <vector>

namespace convnext::io {

namespace {

bool starts_with(const std::vector<unsigned char>& b, const char* magic, size_t n, size_t at = 0) {
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}

// The signatures of what a checkpoint can be; anything else is described, not parsed.
bool may_be_checkpoint(const std::vector<unsigned char>& b) {
  if (b.size() >= 9 && b[8] == '{') return true;              // safetensors: u64 header length, then JSON
  if (starts_with(b, "PK\x03\x04", 4)) return true;            // torch.save zip (pytorch_model.bin, .pth)
  if (starts_with(b, "\x89HDF\r\n\x1a\n", 8)) return true;    // HDF5 (tf_model.h5)
  if (b.size() >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return true;  // a pickle (legacy torch.save)
  return false;
}

std::string image_kind(const std::vector<unsigned char>& b) {
  if (starts_with(b, "\xFF\xD8\xFF", 3)) return "a JPEG image";
  if (starts_with(b, "\x89PNG\r\n\x1a\n", 8)) return "a PNG image";
  if (starts_with(b, "GIF87a", 6) || starts_with(b, "GIF89a", 6)) return "a GIF image";
  if (starts_with(b, "RIFF", 4) && starts_with(b, "WEBP", 4, 8)) return "a WebP image";
  if (starts_with(b, "II*\0", 4) || starts_with(b, "MM\0*", 4)) return "a TIFF image";
  if (b.size() >= 14 && starts_with(b, "BM", 2)) return "a BMP image";
  if (b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && std::isspace(b[2])) return "a PNM image";
  return "";
}

std::string other_kind(const std::vector<unsigned char>& b) {
  if (starts_with(b, "%PDF", 4)) return "a PDF document";
  if (starts_with(b, "\x1f\x8b", 2)) return "gzip-compressed data";
  if (starts_with(b, "\x7f" "ELF", 4)) return "an ELF executable";
  // Text: no NUL and almost only printable bytes (UTF-8 continuation bytes count as printable).
  const size_t odd = static_cast<size_t>(std::count_if(b.begin(), b.end(), [](unsigned char c) {
    return c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f';
  }));
  if (std::find(b.begin(), b.end(), 0) == b.end() && odd * 50 <= b.size()) {
    const auto first = std::find_if(b.begin(), b.end(), [](unsigned char c) { return !std::isspace(c); });
    if (first != b.end() && (*first == '{' || *first == '[')) return "a JSON file";
    return "a text file";
  }
  return "unrecognised binary data";
}

}  // namespace

std::string non_checkpoint_kind(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";  // the reader names the problem (missing, unreadable)
  std::vector<unsigned char> head(4096);
  f.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(f.gcount()));
  if (head.empty()) return "an empty file";
  if (may_be_checkpoint(head)) return "";
  if (std::string k = image_kind(head); !k.empty()) return k;
  return other_kind(head);
}

}  // namespace convnext::io
