// convnext preprocess: image files → pixel_values, exactly as transformers' image processor.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "images.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext preprocess --processor PATH [--backend pil|torchvision] --output OUT.safetensors
                           [--no-exif] [--max-pixels N] [--threads N] IMAGE...

Decodes each IMAGE as transformers' load_image does (EXIF orientation applied, then RGB; grey
"L" when the processor's image_mean has one entry), runs ConvNextImageProcessor with the
preprocessor_config.json at PATH (a file or a directory holding one), and writes
`pixel_values` F32 [N,C,S,S] in argument order.

  --backend pil          ConvNextImageProcessorPil: Pillow's resampling, bit-exact (default)
  --backend torchvision  ConvNextImageProcessor of transformers 5 (its default): torchvision's
                         resize, within one uint8 step
  --no-exif              do not apply the EXIF orientation
  --max-pixels N         decompression-bomb limit (default 89478485, Pillow's; 0 = none)
  --threads N            images decoded and processed in parallel, and the threads of one
                         resize (default 0: automatic)
  --repeat N             time N runs of the whole decode + preprocess and print the median
                         (ms) as JSON on stdout (used by bench/preprocess_vs_pillow.py)
Formats: JPEG, PNG, WebP, BMP, PNM (detected from the bytes).
)";
}  // namespace

int cmd_preprocess(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"no-exif"}, {"processor", "backend", "output", "max-pixels", "threads", "repeat"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string out = a.required("output");
  if (a.positional().empty()) throw Error("no images given (see --help)");
  set_num_threads(a.threads());
  const auto proc = ConvNextImageProcessor::from_pretrained(a.required("processor"), parse_backend(a));
  const DecodeSettings decode = parse_decode(a);
  const int64_t repeat = a.get_int("repeat", 0);
  if (repeat > 0) {
    std::vector<double> ms;
    for (int64_t i = 0; i < repeat; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)proc.preprocess_files(a.positional(), decode);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("{\"median_ms\": %.3f, \"min_ms\": %.3f, \"runs\": %lld, \"threads\": %d}\n", ms[ms.size() / 2], ms[0],
                static_cast<long long>(repeat), num_threads());
  }
  const Tensor px = proc.preprocess_files(a.positional(), decode);
  save_tensors(out, {{"pixel_values", px}});
  if (repeat == 0) std::printf("wrote %s: pixel_values %s\n", out.c_str(), shape_str(px.shape()).c_str());
  return 0;
}

}  // namespace convnext::cli
