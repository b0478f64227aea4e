// convnext features: pooled features (and hidden states) of images.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "images.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext features --model DIR --output OUT.safetensors [--hidden-states] [--backend pil|torchvision]
                         [--no-exif] [--max-pixels N] [--threads N] IMAGE...

Runs the checkpoint's encoder on the images (preprocessed with DIR's preprocessor_config.json)
and writes `pooler_output` [N,C] (mean over H,W then the final LayerNorm, what the classifier
sees) and `last_hidden_state`; with --hidden-states also `hidden_states.0` ... For a
ConvNextBackbone checkpoint it writes `feature_maps.0` ... instead.
)";
}  // namespace

int cmd_features(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"hidden-states", "no-exif"}, {"model", "output", "backend", "max-pixels", "threads"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string dir = a.required("model"), out = a.required("output");
  if (a.positional().empty()) throw Error("no images given (see --help)");
  set_num_threads(a.threads());
  const bool hidden = a.has("hidden-states");
  const ConvNextConfig cfg = config_of_checkpoint(dir);
  const auto proc = ConvNextImageProcessor::from_pretrained(dir, parse_backend(a));
  const Tensor px = proc.preprocess_files(list_image_files(a.positional()), parse_decode(a), proc.channels_for(cfg.num_channels));
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<Tensor> hs;
  if (cfg.architecture() == Architecture::Backbone) {
    auto out_b = ConvNextBackbone::from_pretrained(dir).forward(px, hidden);
    for (size_t i = 0; i < out_b.feature_maps.size(); ++i) tensors.emplace_back("feature_maps." + std::to_string(i), out_b.feature_maps[i]);
    hs = std::move(out_b.hidden_states);
  } else {
    // Both ConvNextModel and classifier checkpoints load as ConvNextModel (the head is unused).
    auto m = ConvNextModel::from_pretrained(dir).forward(px, hidden);
    tensors.emplace_back("pooler_output", m.pooler_output);
    tensors.emplace_back("last_hidden_state", m.last_hidden_state);
    hs = std::move(m.hidden_states);
  }
  for (size_t i = 0; i < hs.size(); ++i) tensors.emplace_back("hidden_states." + std::to_string(i), hs[i]);
  save_tensors(out, tensors);
  std::printf("wrote %s:", out.c_str());
  for (const auto& [name, t] : tensors) std::printf(" %s %s", name.c_str(), shape_str(t.shape()).c_str());
  std::printf("\n");
  return 0;
}

}  // namespace convnext::cli
