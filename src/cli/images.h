// Shared by the commands that read image files: the backend flag, decode settings, and
// collecting image paths from files and directories.
#pragma once
#include <string>
#include <vector>

#include "cli/args.h"
#include "convnext/image_processor.h"

namespace convnext::cli {

ImageBackend parse_backend(const Args& a);   // --backend pil|torchvision (default pil)
DecodeSettings parse_decode(const Args& a);  // --no-exif, --max-pixels N
// Files as given; directories walked (recursively, sorted) for image files by extension.
std::vector<std::string> collect_images(const std::vector<std::string>& inputs);

// A progress bar on stderr, drawn only when stderr is a terminal and there is enough work.
class Progress {
 public:
  Progress(const char* what, size_t total);
  void advance(size_t n);
  ~Progress();

 private:
  const char* what_;
  size_t total_, done_ = 0;
  bool active_;
};

}  // namespace convnext::cli
