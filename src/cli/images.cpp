#include "cli/images.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "convnext/error.h"

namespace convnext::cli {

namespace fs = std::filesystem;

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

std::vector<std::string> collect_images(const std::vector<std::string>& inputs) {
  static const char* kExt[] = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".pnm", ".jfif"};
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (!fs::is_directory(in, ec)) {
      out.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_regular_file(ec)) continue;
      std::string ext = it->path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; }))
        found.push_back(it->path().string());
    }
    std::sort(found.begin(), found.end());
    if (found.empty()) throw Error(in + ": no image files in the directory");
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
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
