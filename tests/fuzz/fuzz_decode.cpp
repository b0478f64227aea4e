// libFuzzer target: image decoding (every format, EXIF parsing) and the two resizes on
// whatever decodes. Build with the CONVNEXT_FUZZ option (clang), run e.g.
//   ./build-fuzz/fuzz_decode -max_total_time=300 -max_len=65536 corpus/
#include <cstddef>
#include <cstdint>

#include "convnext/error.h"
#include "image/decode.h"
#include "image/resample.h"
#include "image/resize_torchvision.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace convnext::image;
  DecodeOptions o;
  o.max_pixels = 1 << 22;  // keep iterations fast; the limit check itself is exercised too
  for (ColorMode mode : {ColorMode::RGB, ColorMode::L}) {
    try {
      Image img = decode_image(data, size, "fuzz", mode, o);
      const int64_t w = 1 + (size % 37), h = 1 + (size % 23);
      (void)resize_pil(img, w, h, static_cast<Filter>(size % 6));
      (void)resize_torchvision(img, h, w, static_cast<Filter>((size / 7) % 6));
    } catch (const convnext::Error&) {
    }
  }
  return 0;
}
