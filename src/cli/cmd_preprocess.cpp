// convnext preprocess: image files → pixel_values, exactly as transformers' image processor.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/images.h"
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
Formats: JPEG, PNG, WebP, BMP, PNM (detected from the bytes).
)";
}  // namespace

int cmd_preprocess(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"no-exif"}, {"processor", "backend", "output", "max-pixels", "threads"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string out = a.required("output");
  if (a.positional().empty()) throw Error("no images given (see --help)");
  set_num_threads(static_cast<int>(a.get_int("threads", 0)));
  const auto proc = ConvNextImageProcessor::from_pretrained(a.required("processor"), parse_backend(a));
  const Tensor px = proc.preprocess_files(a.positional(), parse_decode(a));
  save_tensors(out, {{"pixel_values", px}});
  std::printf("wrote %s: pixel_values %s\n", out.c_str(), shape_str(px.shape()).c_str());
  return 0;
}

}  // namespace convnext::cli
