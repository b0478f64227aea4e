// A program outside this project that uses an installed libconvnext through its public API alone:
// classifies images with a save_pretrained directory and prints each one's top-1 label, one a line.
// tests/install_consumer.sh builds it through find_package(convnext) (CMakeLists.txt here) and
// through pkg-config, and compares the labels with `convnext classify`'s.
//
//   convnext_consumer MODEL_DIR IMAGE...
#include <convnext/convnext.h>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE...\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const std::vector<std::string> images(argv + 2, argv + argc);
    const auto processor = convnext::ConvNextImageProcessor::from_pretrained(dir);
    const auto model = convnext::ConvNextForImageClassification::from_pretrained(dir);
    const convnext::ConvNextConfig& config = model.config();
    // Decoded to the model's channels (grey for a grey model), as `convnext classify` does.
    const convnext::Tensor pixel_values =
        processor.preprocess_files(images, {}, processor.channels_for(config.num_channels));
    const convnext::ImageClassifierOutput out = model.forward(pixel_values);
    const int64_t labels = out.logits.dim(1);
    for (int64_t i = 0; i < out.logits.dim(0); ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < labels; ++j)
        if (out.logits[i * labels + j] > out.logits[i * labels + best]) best = j;
      std::printf("%s\n", config.id2label.at(best).c_str());
    }
    std::fprintf(stderr, "libconvnext %s (%s), %s kernels\n", convnext::version(), convnext::git_revision(),
                 convnext::build_info().kernels.c_str());
  } catch (const convnext::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
