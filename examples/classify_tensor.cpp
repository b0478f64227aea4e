// Example: use libconvnext without the CLI.
//
//   example_classify MODEL_DIR [INPUT.safetensors]
//
// Loads a ConvNextForImageClassification checkpoint, runs it on `pixel_values` from the input
// file (or on a gray image of the config's size), and prints the top-5 labels.
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "convnext/convnext.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [INPUT.safetensors]\n", argv[0]);
    return 2;
  }
  try {
    auto model = convnext::ConvNextForImageClassification::from_pretrained(argv[1]);
    const auto& cfg = model.config();
    convnext::Tensor pixels({1, cfg.num_channels, cfg.image_size, cfg.image_size});  // zeros = a mid-gray image
    if (argc > 2) pixels = convnext::load_tensor(argv[2], "pixel_values");

    convnext::ImageClassifierOutput out = model.forward(pixels);

    const int64_t L = out.logits.dim(1);
    std::vector<int64_t> order(static_cast<size_t>(L));
    std::iota(order.begin(), order.end(), 0);
    const int64_t k = std::min<int64_t>(5, L);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return out.logits[a] > out.logits[b]; });
    for (int64_t i = 0; i < k; ++i)
      std::printf("%8.4f  %s\n", out.logits[order[static_cast<size_t>(i)]], cfg.id2label.at(order[static_cast<size_t>(i)]).c_str());
  } catch (const convnext::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
