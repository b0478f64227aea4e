// ConvNextConfig <-> config.json, with transformers' defaults and backbone alignment rules.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "convnext/config.h"
#include "convnext/error.h"
#include "io/json_file.h"

namespace convnext {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::pair<std::string, Activation>>& activation_table() {
  static const std::vector<std::pair<std::string, Activation>> t = {
      {"gelu", Activation::Gelu},           {"gelu_python", Activation::Gelu},
      {"gelu_new", Activation::GeluTanh},   {"gelu_pytorch_tanh", Activation::GeluTanh},
      {"gelu_accurate", Activation::GeluTanh}, {"gelu_fast", Activation::GeluFast},
      {"quick_gelu", Activation::QuickGelu}, {"gelu_10", Activation::Gelu10},
      {"relu", Activation::Relu},           {"relu6", Activation::Relu6},
      {"relu2", Activation::Relu2},         {"leaky_relu", Activation::LeakyRelu},
      {"silu", Activation::Silu},           {"swish", Activation::Silu},
      {"selu", Activation::Selu},           {"sigmoid", Activation::Sigmoid},
      {"tanh", Activation::Tanh},           {"mish", Activation::Mish},
      {"linear", Activation::Linear},
  };
  return t;
}

[[noreturn]] void bad(const std::string& origin, const std::string& what) {
  throw Error(origin + ": " + what);
}

template <typename T>
T get_as(const json& j, const char* key, const std::string& origin, const char* expected) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    bad(origin, std::string("field '") + key + "' must be " + expected + ", got " + j.at(key).dump());
  }
}

int64_t get_int(const json& j, const char* key, const std::string& origin) {
  const json& v = j.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
  bad(origin, std::string("field '") + key + "' must be an integer, got " + v.dump());
}

double get_num(const json& j, const char* key, const std::string& origin) {
  const json& v = j.at(key);
  if (!v.is_number()) bad(origin, std::string("field '") + key + "' must be a number, got " + v.dump());
  return v.get<double>();
}

std::vector<int64_t> get_int_list(const json& j, const char* key, const std::string& origin) {
  const json& v = j.at(key);
  if (!v.is_array()) bad(origin, std::string("field '") + key + "' must be a list of integers, got " + v.dump());
  std::vector<int64_t> out;
  for (const json& e : v) {
    if (!e.is_number_integer())
      bad(origin, std::string("field '") + key + "' must be a list of integers, got " + v.dump());
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::vector<std::string> get_str_list(const json& j, const char* key, const std::string& origin) {
  const json& v = j.at(key);
  if (!v.is_array()) bad(origin, std::string("field '") + key + "' must be a list of strings, got " + v.dump());
  std::vector<std::string> out;
  for (const json& e : v) {
    if (!e.is_string()) bad(origin, std::string("field '") + key + "' must be a list of strings, got " + v.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<std::string> default_stage_names(size_t n_depths) {
  std::vector<std::string> s = {"stem"};
  for (size_t i = 1; i <= n_depths; ++i) s.push_back("stage" + std::to_string(i));
  return s;
}

}  // namespace

Activation parse_activation(const std::string& name) {
  for (const auto& [n, a] : activation_table())
    if (n == name) return a;
  std::string names;
  for (const auto& [n, a] : activation_table()) names += (names.empty() ? "" : ", ") + n;
  throw Error("unsupported hidden_act '" + name + "' (supported: " + names + ")");
}

const char* architecture_name(Architecture a, bool v2) {
  switch (a) {
    case Architecture::Model: return v2 ? "ConvNextV2Model" : "ConvNextModel";
    case Architecture::ForImageClassification: return v2 ? "ConvNextV2ForImageClassification" : "ConvNextForImageClassification";
    case Architecture::Backbone: return v2 ? "ConvNextV2Backbone" : "ConvNextBackbone";
  }
  return "?";
}

ConvNextConfig::ConvNextConfig() {
  // out_features / out_indices stay empty: validate_and_align() gives the default (the last
  // stage) for whatever depths the caller sets.
  stage_names = default_stage_names(depths.size());
  set_num_labels(2);
}

std::string infer_problem_type(int64_t num_labels, bool integer_labels) {
  if (num_labels == 1) return "regression";
  if (num_labels > 1 && integer_labels) return "single_label_classification";
  return "multi_label_classification";
}

std::string ConvNextConfig::resolved_problem_type(bool integer_labels) const {
  return problem_type ? *problem_type : infer_problem_type(num_labels(), integer_labels);
}

void ConvNextConfig::set_num_labels(int64_t n) {
  if (n < 0) throw Error("num_labels must be >= 0, got " + std::to_string(n));
  id2label.clear();
  for (int64_t i = 0; i < n; ++i) id2label[i] = "LABEL_" + std::to_string(i);
}

Architecture ConvNextConfig::architecture() const {
  // The V1 and V2 class names alike: model_type says which network it is.
  for (const std::string& a : architectures)
    for (const Architecture k : {Architecture::Model, Architecture::ForImageClassification, Architecture::Backbone})
      if (a == architecture_name(k, false) || a == architecture_name(k, true)) return k;
  if (architectures.empty()) return Architecture::ForImageClassification;
  throw Error("unsupported architectures " + json(architectures).dump() +
              " (supported: ConvNextModel, ConvNextForImageClassification, ConvNextBackbone and their ConvNextV2 forms)");
}

void ConvNextConfig::validate_and_align() {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error(what);
  };
  need(model_type == "convnext" || model_type == "convnextv2",
       "model_type must be 'convnext' or 'convnextv2', got '" + model_type + "'");
  need(num_channels >= 1, "num_channels must be >= 1, got " + std::to_string(num_channels));
  need(patch_size >= 1, "patch_size must be >= 1, got " + std::to_string(patch_size));
  need(num_stages >= 1, "num_stages must be >= 1, got " + std::to_string(num_stages));
  need(static_cast<int64_t>(hidden_sizes.size()) >= num_stages,
       "hidden_sizes has " + std::to_string(hidden_sizes.size()) + " entries but num_stages is " +
           std::to_string(num_stages));
  need(static_cast<int64_t>(depths.size()) >= num_stages,
       "depths has " + std::to_string(depths.size()) + " entries but num_stages is " + std::to_string(num_stages));
  // Upper bounds far above any real ConvNeXt, so a hostile config.json cannot make the loader
  // allocate without limit before a single weight is read.
  need(num_channels <= 4096, "num_channels " + std::to_string(num_channels) + " is implausibly large (max 4096)");
  need(patch_size <= 1024, "patch_size " + std::to_string(patch_size) + " is implausibly large (max 1024)");
  need(num_stages <= 16, "num_stages " + std::to_string(num_stages) + " is implausibly large (max 16)");
  need(num_labels() <= 10000000, "num_labels " + std::to_string(num_labels()) + " is implausibly large");
  for (int64_t h : hidden_sizes)
    need(h >= 1 && h <= 65536, "hidden_sizes entries must be in 1..65536, got " + json(hidden_sizes).dump());
  for (int64_t d : depths) need(d >= 0 && d <= 4096, "depths entries must be in 0..4096, got " + json(depths).dump());
  need(layer_norm_eps >= 0, "layer_norm_eps must be >= 0");
  parse_activation(hidden_act);
  if (problem_type) {
    const std::string& p = *problem_type;
    need(p == "regression" || p == "single_label_classification" || p == "multi_label_classification",
         "problem_type must be regression, single_label_classification or multi_label_classification, got '" + p +
             "'");
  }

  // Backbone alignment (transformers' get_aligned_output_features_output_indices and
  // verify_out_features_out_indices).
  stage_names = default_stage_names(depths.size());
  const int64_t ns = static_cast<int64_t>(stage_names.size());
  if (out_features.empty() && out_indices.empty()) {
    out_features = {stage_names.back()};
    out_indices = {ns - 1};
  } else if (out_features.empty()) {
    for (int64_t& i : out_indices) {
      need(i >= -ns && i < ns, "out_indices " + json(out_indices).dump() + " out of range for stage_names " +
                                   json(stage_names).dump());
      if (i < 0) i = ((i % ns) + ns) % ns;
    }
    for (int64_t i : out_indices) out_features.push_back(stage_names[static_cast<size_t>(i)]);
  } else if (out_indices.empty()) {
    for (const std::string& f : out_features)
      need(std::find(stage_names.begin(), stage_names.end(), f) != stage_names.end(),
           "out_features contains '" + f + "', which is not in stage_names " + json(stage_names).dump());
    for (int64_t i = 0; i < ns; ++i)
      if (std::find(out_features.begin(), out_features.end(), stage_names[static_cast<size_t>(i)]) !=
          out_features.end())
        out_indices.push_back(i);
  }
  need(out_features.size() == out_indices.size(),
       "out_features " + json(out_features).dump() + " and out_indices " + json(out_indices).dump() +
           " should have the same length if both are set");
  std::set<std::string> seen;
  int64_t prev = -1;
  for (size_t k = 0; k < out_features.size(); ++k) {
    int64_t i = out_indices[k];
    need(i >= -ns && i < ns, "out_indices " + json(out_indices).dump() + " out of range");
    if (i < 0) i = ((i % ns) + ns) % ns;
    out_indices[k] = i;
    need(stage_names[static_cast<size_t>(i)] == out_features[k],
         "out_features " + json(out_features).dump() + " and out_indices " + json(out_indices).dump() +
             " should correspond to the same stages in stage_names " + json(stage_names).dump());
    need(seen.insert(out_features[k]).second, "out_features " + json(out_features).dump() + " has duplicates");
    need(i > prev, "out_features " + json(out_features).dump() + " must be in the same order as stage_names");
    prev = i;
  }
  architecture();
}

ConvNextConfig ConvNextConfig::from_json_string(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad(origin, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(origin, "expected a JSON object");
  ConvNextConfig c;
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (has("model_type")) {
    if (!j["model_type"].is_string() || (j["model_type"] != "convnext" && j["model_type"] != "convnextv2"))
      bad(origin, "model_type is " + j["model_type"].dump() + ", expected 'convnext' or 'convnextv2' (ConvNeXt V2)");
    c.model_type = j["model_type"].get<std::string>();
  } else if (has("architectures") && j["architectures"].is_array()) {
    // No model_type (a hand-written config): the class names say which ConvNeXt it is.
    for (const json& a : j["architectures"])
      if (a.is_string() && a.get<std::string>().starts_with("ConvNextV2")) c.model_type = "convnextv2";
  }
  if (has("num_channels")) c.num_channels = get_int(j, "num_channels", origin);
  if (has("patch_size")) c.patch_size = get_int(j, "patch_size", origin);
  if (has("num_stages")) c.num_stages = get_int(j, "num_stages", origin);
  if (has("hidden_sizes")) c.hidden_sizes = get_int_list(j, "hidden_sizes", origin);
  if (has("depths")) c.depths = get_int_list(j, "depths", origin);
  if (has("hidden_act")) c.hidden_act = get_as<std::string>(j, "hidden_act", origin, "a string");
  if (has("initializer_range")) c.initializer_range = get_num(j, "initializer_range", origin);
  if (has("layer_norm_eps")) c.layer_norm_eps = get_num(j, "layer_norm_eps", origin);
  if (has("layer_scale_init_value")) c.layer_scale_init_value = get_num(j, "layer_scale_init_value", origin);
  if (has("drop_path_rate")) c.drop_path_rate = get_num(j, "drop_path_rate", origin);
  if (has("image_size")) {
    // Some hub configs store image_size as a list or omit it; only an int is meaningful here.
    if (j["image_size"].is_number_integer()) c.image_size = j["image_size"].get<int64_t>();
  }
  c.out_features.clear();
  c.out_indices.clear();
  if (has("out_features")) c.out_features = get_str_list(j, "out_features", origin);
  if (has("out_indices")) c.out_indices = get_int_list(j, "out_indices", origin);
  if (has("problem_type")) c.problem_type = get_as<std::string>(j, "problem_type", origin, "a string");
  if (has("architectures")) c.architectures = get_str_list(j, "architectures", origin);
  if (has("dtype")) c.dtype = get_as<std::string>(j, "dtype", origin, "a string");
  else if (has("torch_dtype")) c.dtype = get_as<std::string>(j, "torch_dtype", origin, "a string");

  // Labels: id2label wins, then num_labels, then PretrainedConfig's default of 2.
  if (has("id2label")) {
    if (!j["id2label"].is_object()) bad(origin, "field 'id2label' must be an object");
    c.id2label.clear();
    for (auto& [k, v] : j["id2label"].items()) {
      int64_t id;
      try {
        size_t pos = 0;
        id = std::stoll(k, &pos);
        if (pos != k.size()) throw std::invalid_argument(k);
      } catch (const std::exception&) {
        bad(origin, "id2label key '" + k + "' is not an integer");
      }
      if (!v.is_string()) bad(origin, "id2label['" + k + "'] must be a string");
      c.id2label[id] = v.get<std::string>();
    }
    int64_t expect = 0;
    for (auto& [id, name] : c.id2label)
      if (id != expect++) bad(origin, "id2label keys must be 0..num_labels-1");
    if (has("num_labels") && get_int(j, "num_labels", origin) != c.num_labels())
      bad(origin, "num_labels " + std::to_string(get_int(j, "num_labels", origin)) + " disagrees with id2label (" +
                      std::to_string(c.num_labels()) + " entries)");
  } else if (has("num_labels")) {
    c.set_num_labels(get_int(j, "num_labels", origin));
  }
  try {
    c.validate_and_align();
  } catch (const Error& e) {
    bad(origin, e.what());
  }
  return c;
}

ConvNextConfig ConvNextConfig::from_file(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "config.json";
  return from_json_string(io::read_text_file(p.string()), p.string());
}

std::string ConvNextConfig::to_json_string() const {
  json j;  // nlohmann::json objects keep keys sorted, as save_pretrained's sort_keys=True
  j["architectures"] = architectures;
  j["depths"] = depths;
  j["drop_path_rate"] = drop_path_rate;
  j["dtype"] = dtype;
  j["hidden_act"] = hidden_act;
  j["hidden_sizes"] = hidden_sizes;
  json id2l = json::object(), l2id = json::object();
  for (const auto& [id, name] : id2label) {
    id2l[std::to_string(id)] = name;
    l2id[name] = id;
  }
  j["id2label"] = id2l;
  j["label2id"] = l2id;
  j["image_size"] = image_size;
  j["initializer_range"] = initializer_range;
  j["layer_norm_eps"] = layer_norm_eps;
  if (!is_v2()) j["layer_scale_init_value"] = layer_scale_init_value;  // ConvNextV2Config has none
  j["model_type"] = model_type;
  j["num_channels"] = num_channels;
  j["num_stages"] = num_stages;
  j["out_features"] = out_features;
  j["out_indices"] = out_indices;
  j["patch_size"] = patch_size;
  if (problem_type) j["problem_type"] = *problem_type;
  j["stage_names"] = stage_names;
  j["transformers_version"] = "5.17.0";
  return j.dump(2) + "\n";
}

void ConvNextConfig::save(const std::string& path) const {
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "config.json";
  std::ofstream out(p, std::ios::binary);
  if (!out) throw Error(p.string() + ": cannot write");
  out << to_json_string();
  if (!out) throw Error(p.string() + ": write failed");
}

namespace {

struct Preset {
  const char* name;
  bool v2;
  std::vector<int64_t> depths, hidden_sizes;
};

// transformers' conversion scripts (convert_convnext_to_pytorch.py, convert_convnextv2_to_pytorch.py)
// and timm's small V1 models (convnext_atto ... convnext_nano, conv-MLP in timm, the same function).
const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = {
      {"atto", false, {2, 2, 6, 2}, {40, 80, 160, 320}},
      {"femto", false, {2, 2, 6, 2}, {48, 96, 192, 384}},
      {"pico", false, {2, 2, 6, 2}, {64, 128, 256, 512}},
      {"nano", false, {2, 2, 8, 2}, {80, 160, 320, 640}},
      {"tiny", false, {3, 3, 9, 3}, {96, 192, 384, 768}},
      {"small", false, {3, 3, 27, 3}, {96, 192, 384, 768}},
      {"base", false, {3, 3, 27, 3}, {128, 256, 512, 1024}},
      {"large", false, {3, 3, 27, 3}, {192, 384, 768, 1536}},
      {"xlarge", false, {3, 3, 27, 3}, {256, 512, 1024, 2048}},
      {"v2-atto", true, {2, 2, 6, 2}, {40, 80, 160, 320}},
      {"v2-femto", true, {2, 2, 6, 2}, {48, 96, 192, 384}},
      {"v2-pico", true, {2, 2, 6, 2}, {64, 128, 256, 512}},
      {"v2-nano", true, {2, 2, 8, 2}, {80, 160, 320, 640}},
      {"v2-tiny", true, {3, 3, 9, 3}, {96, 192, 384, 768}},
      {"v2-base", true, {3, 3, 27, 3}, {128, 256, 512, 1024}},
      {"v2-large", true, {3, 3, 27, 3}, {192, 384, 768, 1536}},
      {"v2-huge", true, {3, 3, 27, 3}, {352, 704, 1408, 2816}},
  };
  return p;
}

}  // namespace

std::vector<std::string> ConvNextConfig::preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.push_back(p.name);
  return names;
}

ConvNextConfig ConvNextConfig::preset(const std::string& name, int64_t num_labels) {
  const std::string key = name.starts_with("convnextv2-") ? "v2-" + name.substr(11) : name;
  for (const Preset& p : presets()) {
    if (key != p.name) continue;
    ConvNextConfig c;
    c.model_type = p.v2 ? "convnextv2" : "convnext";
    c.depths = p.depths;
    c.hidden_sizes = p.hidden_sizes;
    c.architectures = {architecture_name(Architecture::ForImageClassification, p.v2)};
    c.set_num_labels(num_labels);
    c.validate_and_align();
    return c;
  }
  std::string known;
  for (const Preset& p : presets()) known += (known.empty() ? "" : ", ") + std::string(p.name);
  throw Error("unknown variant '" + name + "' (known: " + known + ")");
}

std::string ConvNextConfig::variant_name() const {
  if (num_stages != 4 || patch_size != 4) return "";
  for (const Preset& p : presets())
    if (p.v2 == is_v2() && p.depths == depths && p.hidden_sizes == hidden_sizes) return p.name;
  return "";
}

}  // namespace convnext
