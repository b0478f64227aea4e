// Shared by the commands that read image files: the backend flag, decode settings, progress.
// (Image files are gathered from directories by convnext::list_image_files.)
#pragma once
#include <string>
#include <vector>

#include "args.h"
#include "convnext/image_processor.h"

namespace convnext::cli {

ImageBackend parse_backend(const Args& a);   // --backend pil|torchvision (default pil)
DecodeSettings parse_decode(const Args& a);  // --no-exif, --max-pixels N

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
