// convnext forward: pixel_values (and optional labels) in, transformers' output fields out.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {

const char* kHelp = R"(usage: convnext forward --model DIR --input IN.safetensors --output OUT.safetensors
                        [--hidden-states] [--threads N] [--dtype f32|bf16|int8] [--ignore-mismatched-sizes] [--json]

Runs the checkpoint in DIR as the class its config.json names in "architectures", on IN's
`pixel_values` (F32 [N,C,H,W]). DIR: a save_pretrained directory (model.safetensors,
pytorch_model.bin or tf_model.h5, sharded or not), a hub id in the local Hugging Face cache
(org/name[@revision]), or a timm / facebookresearch / torchvision state dict (file or directory,
config inferred from the shapes when there is no config.json).

IN may also hold `labels`: I64 [N] for single-label classification, F32 [N] or [N,num_labels]
for regression and multi-label; the loss then follows transformers' problem_type rules.

OUT receives F32 tensors named as transformers' output fields:
  ConvNextForImageClassification  logits, pooler_output, last_hidden_state, loss ([1], with labels)
  ConvNextModel                   pooler_output, last_hidden_state
  ConvNextBackbone                feature_maps.0 ... (out_features order)
  --hidden-states                 hidden_states.0 ... hidden_states.{num_stages}

A summary goes to stdout (one JSON object with --json).
  --threads N   threads (default: one per core)
  --dtype bf16  bfloat16 GEMMs (vdpbf16ps, fp32 accumulation): about twice as fast, ~1e-2 logit error
  --dtype int8  the blocks' pointwise GEMMs in int8 (vpdpbusd where the CPU has AVX512_VNNI):
                weights per output channel, activations per row as they come, int32 sums;
                LayerNorm, depthwise conv, downsampling and head stay fp32
)";

Labels read_labels(const TensorFile& f) {
  if (f.is_floating("labels")) return Labels::floats(f.get("labels"));
  return Labels::classes(f.get_int64("labels"));
}

// The output file and its summary, filled tensor by tensor.
struct Outputs {
  TensorFileWriter file;
  nlohmann::json summary;
  void put(const std::string& name, const Tensor& t) {
    file.add(name, t);
    summary["outputs"][name] = {{"shape", t.shape()}};
  }
  void put_hidden(const std::vector<Tensor>& hs) {
    for (size_t i = 0; i < hs.size(); ++i) put("hidden_states." + std::to_string(i), hs[i]);
  }
};

// The top-1 class of each image, when the logits are class scores.
nlohmann::json predictions(const Tensor& logits, const ConvNextConfig& cfg) {
  nlohmann::json preds = nlohmann::json::array();
  const int64_t L = logits.dim(1);
  for (int64_t n = 0; n < logits.dim(0); ++n) {
    int64_t best = 0;
    for (int64_t j = 1; j < L; ++j)
      if (logits[n * L + j] > logits[n * L + best]) best = j;
    preds.push_back({{"index", best}, {"label", cfg.id2label.at(best)}, {"logit", logits[n * L + best]}});
  }
  return preds;
}

void run_classifier(const std::string& dir, const LoadOptions& opts, const Tensor& px, const std::optional<Labels>& labels,
                    bool hidden, Outputs& o) {
  auto model = ConvNextForImageClassification::from_pretrained(dir, opts);
  for (const auto& warn : model.load_warnings()) std::fprintf(stderr, "convnext forward: warning: %s\n", warn.c_str());
  auto out = model.forward(px, labels ? &*labels : nullptr, hidden);
  o.put("logits", out.logits);
  if (out.loss) {
    o.put("loss", Tensor({1}, {*out.loss}));
    o.summary["loss"] = *out.loss;
    o.summary["problem_type"] = out.problem_type;
  }
  o.put("pooler_output", out.pooler_output);
  o.put("last_hidden_state", out.last_hidden_state);
  o.put_hidden(out.hidden_states);
  if (model.config().num_labels() > 1) o.summary["predictions"] = predictions(out.logits, model.config());
}

void run_model(const std::string& dir, const LoadOptions& opts, const Tensor& px, bool hidden, Outputs& o) {
  auto out = ConvNextModel::from_pretrained(dir, opts).forward(px, hidden);
  o.put("pooler_output", out.pooler_output);
  o.put("last_hidden_state", out.last_hidden_state);
  o.put_hidden(out.hidden_states);
}

void run_backbone(const std::string& dir, const LoadOptions& opts, const Tensor& px, bool hidden, Outputs& o) {
  auto out = ConvNextBackbone::from_pretrained(dir, opts).forward(px, hidden);
  for (size_t i = 0; i < out.feature_maps.size(); ++i) o.put("feature_maps." + std::to_string(i), out.feature_maps[i]);
  o.put_hidden(out.hidden_states);
}

void print_summary(const nlohmann::json& summary, const std::string& model_dir, const Tensor& px) {
  std::printf("%s (%s) on pixel_values %s -> %s\n", model_dir.c_str(), summary["architecture"].get<std::string>().c_str(),
              shape_str(px.shape()).c_str(), summary["output"].get<std::string>().c_str());
  for (auto& [name, d] : summary["outputs"].items())
    std::printf("  %-20s %s\n", name.c_str(), shape_str(d["shape"].get<Shape>()).c_str());
  if (summary.contains("loss"))
    std::printf("  loss = %.6g (%s)\n", summary["loss"].get<double>(), summary["problem_type"].get<std::string>().c_str());
  if (summary.contains("predictions"))
    for (size_t n = 0; n < summary["predictions"].size(); ++n) {
      const auto& p = summary["predictions"][n];
      std::printf("  image %zu: %s (class %lld, logit %.4f)\n", n, p["label"].get<std::string>().c_str(),
                  static_cast<long long>(p["index"].get<int64_t>()), p["logit"].get<double>());
    }
}

}  // namespace

int cmd_forward(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"hidden-states", "ignore-mismatched-sizes", "json"}, {"model", "input", "output", "threads", "dtype"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!a.positional().empty()) throw Error("unexpected argument '" + a.positional()[0] + "' (see --help)");
  const std::string model_dir = a.required("model"), input = a.required("input"), output = a.required("output");
  set_num_threads(a.threads());
  const bool hidden = a.has("hidden-states");
  LoadOptions opts;
  opts.ignore_mismatched_sizes = a.has("ignore-mismatched-sizes");
  opts.precision = a.dtype();

  const TensorFile in = TensorFile::open(input);
  if (!in.contains("pixel_values")) throw Error(input + ": no tensor named 'pixel_values'");
  const Tensor px = in.get("pixel_values");
  if (px.ndim() != 4) throw Error(input + ": pixel_values must be [N,C,H,W], got shape " + shape_str(px.shape()));
  std::optional<Labels> labels;
  if (in.contains("labels")) labels = read_labels(in);

  const ConvNextConfig config = config_of_checkpoint(model_dir);
  Outputs o;
  o.summary = {{"model", model_dir}, {"architecture", architecture_name(config.architecture(), config.is_v2())}};
  switch (config.architecture()) {
    case Architecture::ForImageClassification: run_classifier(model_dir, opts, px, labels, hidden, o); break;
    case Architecture::Model: run_model(model_dir, opts, px, hidden, o); break;
    case Architecture::Backbone: run_backbone(model_dir, opts, px, hidden, o); break;
  }
  o.file.save(output);
  o.summary["output"] = output;
  if (a.has("json")) std::printf("%s\n", o.summary.dump().c_str());
  else print_summary(o.summary, model_dir, px);
  return 0;
}

}  // namespace convnext::cli
