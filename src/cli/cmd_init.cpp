// convnext init / make-input: checkpoints with fresh weights, and random inputs, for trying
// the tool, for tests and for benchmarks.
#include <cstdio>
#include <random>
#include <sstream>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kInitHelp = R"(usage: convnext init (--arch PRESET | --config CONFIG.json)
                     --output DIR [--num-labels N] [--architecture NAME] [--seed S]

Writes DIR/config.json and DIR/model.safetensors for a model initialised as transformers'
_init_weights does (normal(0, initializer_range) weights, zero biases, LayerNorm 1/0, layer
scale = layer_scale_init_value, ConvNeXt V2's GRN 0), and DIR/preprocessor_config.json: the one
beside CONFIG.json, else the preprocessing of the published ConvNeXt checkpoints at
config.image_size (as `train` and `convert` write it).
PRESET: tiny, small, base, large, xlarge, atto, femto, pico, nano (ConvNeXT V1), v2-atto, v2-femto,
v2-pico, v2-nano, v2-tiny, v2-base, v2-large, v2-huge (ConvNeXt V2, model_type convnextv2).
NAME: ConvNextForImageClassification (default), ConvNextModel or ConvNextBackbone (a V2 model is
written with the ConvNextV2 class names).
)";

const char* kInputHelp = R"(usage: convnext make-input --shape N,C,H,W --output FILE.safetensors [--seed S] [--labels K]

Writes `pixel_values` drawn from N(0,1) and, with --labels K, `labels` (I64 [N], uniform in 0..K-1),
which it prints.
)";

Shape parse_shape(const std::string& s) {
  Shape out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      out.push_back(std::stoll(part));
    } catch (const std::exception&) {
      throw Error("--shape expects N,C,H,W, got '" + s + "'");
    }
  }
  if (out.size() != 4) throw Error("--shape expects N,C,H,W, got '" + s + "'");
  for (int64_t d : out)
    if (d < 1) throw Error("--shape entries must be >= 1, got '" + s + "'");
  return out;
}

// "[3, 0, 2]", the first 64 and a count beyond that.
std::string labels_str(const std::vector<int64_t>& labels) {
  constexpr size_t kShown = 64;
  std::string out = "[";
  for (size_t i = 0; i < labels.size() && i < kShown; ++i) out += (i ? ", " : "") + std::to_string(labels[i]);
  if (labels.size() > kShown) out += ", ... (" + std::to_string(labels.size()) + " in all)";
  return out + "]";
}
}  // namespace

int cmd_init(int argc, char** argv, int first) {
  Args a(argc, argv, first, {}, {"arch", "config", "output", "num-labels", "architecture", "seed"});
  if (a.help()) {
    std::fputs(kInitHelp, stdout);
    return 0;
  }
  const std::string out = a.required("output");
  ConvNextConfig c;
  if (a.has("config")) c = ConvNextConfig::from_file(a.get("config"));
  else c = ConvNextConfig::preset(a.required("arch"), 1000);
  if (a.has("num-labels")) c.set_num_labels(a.get_int("num-labels", 0));
  c.architectures = {a.get("architecture", "ConvNextForImageClassification")};
  const std::string arch = architecture_name(c.architecture(), c.is_v2());
  const uint64_t seed = static_cast<uint64_t>(a.get_int("seed", 0));
  switch (c.architecture()) {
    case Architecture::ForImageClassification: ConvNextForImageClassification(c, seed).save_pretrained(out); break;
    case Architecture::Model: ConvNextModel(c, seed).save_pretrained(out); break;
    case Architecture::Backbone: ConvNextBackbone(c, seed).save_pretrained(out); break;
  }
  // The directory carries the preprocessing its model is meant for, as `train` and `convert` write it.
  ConvNextImageProcessor::for_new_model(c, a.get("config")).save_pretrained(out);
  std::printf("wrote %s: config.json, model.safetensors, preprocessor_config.json (%s)\n", out.c_str(), arch.c_str());
  return 0;
}

int cmd_make_input(int argc, char** argv, int first) {
  Args a(argc, argv, first, {}, {"shape", "output", "seed", "labels"});
  if (a.help()) {
    std::fputs(kInputHelp, stdout);
    return 0;
  }
  const Shape shape = parse_shape(a.required("shape"));
  const std::string out = a.required("output");
  std::mt19937_64 rng(static_cast<uint64_t>(a.get_int("seed", 0)));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Tensor px(shape);
  for (int64_t i = 0; i < px.numel(); ++i) px[i] = dist(rng);
  TensorFileWriter w;
  w.add("pixel_values", px);
  std::vector<int64_t> labels;
  if (a.has("labels")) {
    const int64_t k = a.get_int("labels", 2);
    if (k < 1) throw Error("--labels must be >= 1");
    std::uniform_int_distribution<int64_t> ld(0, k - 1);
    for (int64_t n = 0; n < shape[0]; ++n) labels.push_back(ld(rng));
    w.add_int64("labels", {shape[0]}, labels);
  }
  w.save(out);
  std::printf("wrote %s: pixel_values %s", out.c_str(), shape_str(shape).c_str());
  // The labels drawn, so that what a test or a demo expects can be read off the terminal.
  if (!labels.empty()) std::printf(", labels %s", labels_str(labels).c_str());
  std::printf("\n");
  return 0;
}

}  // namespace convnext::cli
