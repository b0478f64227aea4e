// convnext info: what a checkpoint directory holds.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext info --model DIR [--json]

Loads the checkpoint in DIR (with every check `forward` makes; DIR may also be a timm,
facebookresearch or torchvision weights file or directory without config.json) and prints its architecture, the
preset variant it matches (tiny, small, base, large, xlarge, timm's atto, femto, pico, nano, or
V2's v2-atto ... v2-huge), the parameter count, the labels,
the input size from config.json, and the weights' file format, dtype (as stored) and size.
A file that is not a checkpoint (an image, a text file) is named for what it is.
)";

// "27.8 MB": bytes for people (powers of 1000, as file managers and `ls --si` show them).
std::string human_bytes(int64_t n) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000 && u < 4) v /= 1000, ++u;
  char b[32];
  std::snprintf(b, sizeof b, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return b;
}

// "270,298": long counts grouped by thousands.
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

template <typename M>
nlohmann::json describe(const M& model) {
  const ConvNextConfig& c = model.config();
  nlohmann::json j = {{"architecture", architecture_name(model.architecture(), c.is_v2())},
                      {"model_type", c.model_type},
                      {"variant", c.variant_name().empty() ? "custom" : c.variant_name()},
                      {"parameters", model.num_parameters()},
                      {"num_labels", c.num_labels()},
                      {"image_size", c.image_size},
                      {"num_channels", c.num_channels},
                      {"patch_size", c.patch_size},
                      {"depths", c.depths},
                      {"hidden_sizes", c.hidden_sizes},
                      {"hidden_act", c.hidden_act},
                      {"layer_norm_eps", c.layer_norm_eps},
                      {"format", model.weights_format()},
                      {"dtype", model.weights_dtype()},
                      {"file_bytes", model.weights_file_bytes()}};
  if (model.architecture() == Architecture::Backbone) j["out_features"] = c.out_features;
  j["notes"] = model.load_warnings();  // names mapped, config inferred, heads initialised
  if (c.problem_type) j["problem_type"] = *c.problem_type;
  nlohmann::json labels = nlohmann::json::array();
  for (const auto& [id, name] : c.id2label) labels.push_back(name);
  j["labels"] = labels;
  return j;
}
}  // namespace

int cmd_info(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json"}, {"model"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string dir = a.required("model");
  const ConvNextConfig config = config_of_checkpoint(dir);
  nlohmann::json j;
  switch (config.architecture()) {
    case Architecture::ForImageClassification: j = describe(ConvNextForImageClassification::from_pretrained(dir)); break;
    case Architecture::Model: j = describe(ConvNextModel::from_pretrained(dir)); break;
    case Architecture::Backbone: j = describe(ConvNextBackbone::from_pretrained(dir)); break;
  }
  j["model"] = dir;
  if (a.has("json")) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model         %s\n", dir.c_str());
  std::printf("architecture  %s\n", j["architecture"].get<std::string>().c_str());
  std::printf("variant       %s\n", j["variant"].get<std::string>().c_str());
  std::printf("parameters    %s\n", grouped(j["parameters"].get<int64_t>()).c_str());
  std::printf("depths        %s\n", j["depths"].dump().c_str());
  std::printf("hidden_sizes  %s\n", j["hidden_sizes"].dump().c_str());
  std::printf("hidden_act    %s, patch %lld, %lld input channel(s)\n", j["hidden_act"].get<std::string>().c_str(),
              static_cast<long long>(config.patch_size), static_cast<long long>(config.num_channels));
  std::printf("input size    %lld (config image_size)\n", static_cast<long long>(config.image_size));
  std::printf("format        %s\n", j["format"].get<std::string>().c_str());
  std::printf("dtype         %s\n", j["dtype"].get<std::string>().c_str());
  const int64_t bytes = j["file_bytes"].get<int64_t>();
  std::printf("file size     %s (%s bytes)\n", human_bytes(bytes).c_str(), grouped(bytes).c_str());
  if (j.contains("out_features")) std::printf("out_features  %s\n", j["out_features"].dump().c_str());
  std::string labels;
  int shown = 0;
  for (const auto& [id, name] : config.id2label) {
    if (shown++ == 8) {
      labels += ", ...";
      break;
    }
    labels += (labels.empty() ? "" : ", ") + name;
  }
  std::printf("labels        %lld: %s\n", static_cast<long long>(config.num_labels()), labels.c_str());
  for (const auto& note : j["notes"]) std::printf("note          %s\n", note.get<std::string>().c_str());
  return 0;
}

}  // namespace convnext::cli
