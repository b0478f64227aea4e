#include "images.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "convnext/error.h"

namespace convnext::cli {

ImageBackend parse_backend(const Args& a) {
  const std::string b = a.get("backend", "pil");
  if (b == "pil") return ImageBackend::Pil;
  if (b == "torchvision") return ImageBackend::Torchvision;
  throw Error("--backend must be pil or torchvision, got '" + b + "'");
}

DecodeSettings parse_decode(const Args& a) {
  DecodeSettings s;
  s.exif_transpose = !a.has("no-exif");
  s.max_pixels = a.get_int("max-pixels", s.max_pixels);
  if (s.max_pixels < 0) throw Error("--max-pixels must be >= 0 (0: no limit)");
  return s;
}

Progress::Progress(const char* what, size_t total) : what_(what), total_(total), active_(total >= 16 && isatty(2)) {}

void Progress::advance(size_t n) {
  done_ += n;
  if (!active_) return;
  const int width = 30, filled = static_cast<int>(width * done_ / std::max<size_t>(total_, 1));
  std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu", what_, filled, "##############################", width - filled, "", done_,
               total_);
  std::fflush(stderr);
}

Progress::~Progress() {
  if (active_) std::fputc('\n', stderr);
}

}  // namespace convnext::cli
