// convnext: the command-line tool. Errors print one line on stderr and exit with status 1.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.h"
#include "convnext/error.h"
#include "convnext/version.h"

namespace {

const char* kUsage = R"(convnext: ConvNeXT image models (Hugging Face transformers semantics) in C++

usage: convnext <command> [options]     (convnext <command> --help for each)

commands:
  classify     top-k labels of image files (decoded and preprocessed as transformers does)
  preprocess   image files -> pixel_values (ConvNextImageProcessor, PIL or torchvision backend)
  features     pooled features / hidden states / backbone maps of image files
  train        train or fine-tune a classifier (AdamW, schedules, ImageFolder/CSV/idx/safetensors data)
  eval         loss, top-1/top-5, per-class accuracy and confusion matrix of a classifier on a data set
  serve        an HTTP inference server: KServe V2 / Triton protocol, Hugging Face endpoint, batching, metrics
  forward      run a checkpoint on pixel_values from a safetensors file, write the outputs
  convert      any checkpoint (safetensors, .bin, timm, torchvision, original, hub cache) -> save_pretrained dir
  download     a model from the Hugging Face hub into the local hub cache (HF_ENDPOINT, HF_TOKEN)
  info         describe a checkpoint: architecture, variant, parameters, labels, format, dtype, size
  bench        time the forward pass (random weights for --arch, or a checkpoint)
  init         write a checkpoint directory with freshly initialised weights
  make-input   write a safetensors file of random pixel_values
  version      version, git revision, kernels this CPU runs, dtypes, optional components built in
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, stdout);
    return argc < 2 ? 1 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("convnext %s\n", convnext::version());
    return 0;
  }
  const std::string cmd = argv[1];
  // Keep freed large buffers (decoded photos are tens of MB) in the heap for the next image
  // instead of returning them to the kernel and page-faulting them back in: for a batch of
  // images this halves the decode time, as Pillow's own block allocator does for Pillow.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  try {
    if (cmd == "train") return convnext::cli::cmd_train(argc, argv, 2);
    if (cmd == "eval") return convnext::cli::cmd_eval(argc, argv, 2);
    if (cmd == "forward") return convnext::cli::cmd_forward(argc, argv, 2);
    if (cmd == "classify") return convnext::cli::cmd_classify(argc, argv, 2);
    if (cmd == "preprocess") return convnext::cli::cmd_preprocess(argc, argv, 2);
    if (cmd == "features") return convnext::cli::cmd_features(argc, argv, 2);
    if (cmd == "convert") return convnext::cli::cmd_convert(argc, argv, 2);
    if (cmd == "download") return convnext::cli::cmd_download(argc, argv, 2);
    if (cmd == "info") return convnext::cli::cmd_info(argc, argv, 2);
    if (cmd == "bench") return convnext::cli::cmd_bench(argc, argv, 2);
    if (cmd == "init") return convnext::cli::cmd_init(argc, argv, 2);
    if (cmd == "make-input") return convnext::cli::cmd_make_input(argc, argv, 2);
    if (cmd == "version") return convnext::cli::cmd_version(argc, argv, 2);
    if (cmd == "serve") return convnext::cli::cmd_serve(argc, argv, 2);
    std::fprintf(stderr, "convnext: unknown command '%s' (see convnext --help)\n", cmd.c_str());
    return 2;
  } catch (const convnext::Error& e) {
    std::fprintf(stderr, "convnext %s: error: %s\n", cmd.c_str(), e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "convnext %s: error: out of memory\n", cmd.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convnext %s: error: %s\n", cmd.c_str(), e.what());
  }
  return 1;
}
