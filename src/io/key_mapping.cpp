#include "io/key_mapping.h"

#include <set>
#include <sstream>

#include "convnext/error.h"

namespace convnext::io {

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == '.') parts.push_back(cur), cur.clear();
    else cur += c;
  }
  parts.push_back(cur);
  return parts;
}

bool is_index(const std::string& s) {
  if (s.empty() || s.size() > 6) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "weight" / "bias" only: what every mapped module holds.
bool param(const std::vector<std::string>& p, size_t at) {
  return p.size() == at + 1 && (p[at] == "weight" || p[at] == "bias");
}

const std::string kStages = "convnext.encoder.stages.";

std::string block_name(const std::string& s, const std::string& j, const std::string& what) {
  return kStages + s + ".layers." + j + "." + what;
}

std::string map_timm(const std::vector<std::string>& p) {
  const size_t n = p.size();
  if (n == 3 && p[0] == "stem" && param(p, 2)) {
    if (p[1] == "0") return "convnext.embeddings.patch_embeddings." + p[2];
    if (p[1] == "1") return "convnext.embeddings.layernorm." + p[2];
  }
  if (n == 3 && p[0] == "head" && param(p, 2)) {
    if (p[1] == "norm") return "convnext.layernorm." + p[2];
    if (p[1] == "fc") return "classifier." + p[2];
  }
  if (n >= 4 && p[0] == "stages" && is_index(p[1])) {
    if (n == 5 && p[2] == "downsample" && (p[3] == "0" || p[3] == "1") && param(p, 4))
      return kStages + p[1] + ".downsampling_layer." + p[3] + "." + p[4];
    if (n >= 5 && p[2] == "blocks" && is_index(p[3])) {
      if (n == 5 && p[4] == "gamma") return block_name(p[1], p[3], "layer_scale_parameter");
      if (n == 6 && p[4] == "conv_dw" && param(p, 5)) return block_name(p[1], p[3], "dwconv." + p[5]);
      if (n == 6 && p[4] == "norm" && param(p, 5)) return block_name(p[1], p[3], "layernorm." + p[5]);
      if (n == 7 && p[4] == "mlp" && (p[5] == "fc1" || p[5] == "fc2") && param(p, 6))
        return block_name(p[1], p[3], std::string(p[5] == "fc1" ? "pwconv1." : "pwconv2.") + p[6]);
      // ConvNeXt V2 (timm's GlobalResponseNormMlp): GRN γ, β as weight, bias of shape [4C].
      if (n == 7 && p[4] == "mlp" && p[5] == "grn" && param(p, 6)) return block_name(p[1], p[3], "grn." + p[6]);
    }
  }
  return "";
}

std::string map_original(const std::vector<std::string>& p) {
  const size_t n = p.size();
  if (n == 4 && p[0] == "downsample_layers" && is_index(p[1]) && (p[2] == "0" || p[2] == "1") && param(p, 3)) {
    if (p[1] == "0") return std::string(p[2] == "0" ? "convnext.embeddings.patch_embeddings." : "convnext.embeddings.layernorm.") + p[3];
    return kStages + p[1] + ".downsampling_layer." + p[2] + "." + p[3];
  }
  if (n == 2 && p[0] == "norm" && param(p, 1)) return "convnext.layernorm." + p[1];
  if (n == 2 && p[0] == "head" && param(p, 1)) return "classifier." + p[1];
  if (n >= 4 && p[0] == "stages" && is_index(p[1]) && is_index(p[2])) {
    if (n == 4 && p[3] == "gamma") return block_name(p[1], p[2], "layer_scale_parameter");
    if (n == 5 && param(p, 4)) {
      if (p[3] == "dwconv" || p[3] == "pwconv1" || p[3] == "pwconv2") return block_name(p[1], p[2], p[3] + "." + p[4]);
      if (p[3] == "norm") return block_name(p[1], p[2], "layernorm." + p[4]);
    }
    // ConvNeXt-V2's GRN (models/utils.py): gamma, beta of shape [1, 1, 1, 4C].
    if (n == 5 && p[3] == "grn" && (p[4] == "gamma" || p[4] == "beta"))
      return block_name(p[1], p[2], p[4] == "gamma" ? "grn.weight" : "grn.bias");
  }
  return "";
}

std::string map_torchvision(const std::vector<std::string>& p) {
  const size_t n = p.size();
  if (n == 3 && p[0] == "classifier" && param(p, 2)) {
    if (p[1] == "0") return "convnext.layernorm." + p[2];
    if (p[1] == "2") return "classifier." + p[2];
  }
  if (n >= 4 && p[0] == "features" && is_index(p[1]) && is_index(p[2])) {
    const int f = std::stoi(p[1]);
    if (f == 0 && n == 4 && param(p, 3)) {
      if (p[2] == "0") return "convnext.embeddings.patch_embeddings." + p[3];
      if (p[2] == "1") return "convnext.embeddings.layernorm." + p[3];
    } else if (f % 2 == 0 && n == 4 && (p[2] == "0" || p[2] == "1") && param(p, 3)) {
      return kStages + std::to_string(f / 2) + ".downsampling_layer." + p[2] + "." + p[3];
    } else if (f % 2 == 1) {
      const std::string s = std::to_string((f - 1) / 2);
      if (n == 4 && p[3] == "layer_scale") return block_name(s, p[2], "layer_scale_parameter");
      if (n == 6 && p[3] == "block" && param(p, 5)) {
        if (p[4] == "0") return block_name(s, p[2], "dwconv." + p[5]);
        if (p[4] == "2") return block_name(s, p[2], "layernorm." + p[5]);
        if (p[4] == "3") return block_name(s, p[2], "pwconv1." + p[5]);
        if (p[4] == "5") return block_name(s, p[2], "pwconv2." + p[5]);
      }
    }
  }
  return "";
}

bool has_prefix(const std::map<std::string, Shape>& t, const std::string& prefix) {
  auto it = t.lower_bound(prefix);
  return it != t.end() && it->first.starts_with(prefix);
}

std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

std::string list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

const char* naming_name(Naming n) {
  switch (n) {
    case Naming::Transformers: return "transformers";
    case Naming::Timm: return "timm";
    case Naming::Original: return "facebookresearch (original)";
    case Naming::Torchvision: return "torchvision";
  }
  return "?";
}

std::string map_key_name(Naming naming, const std::string& name) {
  const std::vector<std::string> p = split(name);
  switch (naming) {
    case Naming::Transformers: return name;
    case Naming::Timm: return map_timm(p);
    case Naming::Original: return map_original(p);
    case Naming::Torchvision: return map_torchvision(p);
  }
  return "";
}

KeyMapping map_key_names(const std::map<std::string, Shape>& stored, const std::string& origin) {
  KeyMapping m;
  if (stored.empty()) throw Error(origin + ": the state dict holds no tensors");
  // DataParallel / DistributedDataParallel checkpoints prefix every name with "module.".
  std::map<std::string, Shape> stripped;
  bool all_module = true;
  for (const auto& [name, shape] : stored) all_module = all_module && name.starts_with("module.");
  if (all_module) m.stripped_prefix = "module.";
  for (const auto& [name, shape] : stored) stripped[name.substr(m.stripped_prefix.size())] = shape;

  if (has_prefix(stripped, "convnext.embeddings.") || has_prefix(stripped, "convnextv2.embeddings.") ||
      has_prefix(stripped, "embeddings."))
    m.naming = Naming::Transformers;
  else if (stripped.count("stem.0.weight") || has_prefix(stripped, "stages.0.blocks.")) m.naming = Naming::Timm;
  else if (stripped.count("downsample_layers.0.0.weight")) m.naming = Naming::Original;
  else if (stripped.count("features.0.0.weight")) m.naming = Naming::Torchvision;
  else
    throw Error(origin + ": tensor names of no known ConvNeXt naming (transformers, timm, facebookresearch, torchvision), e.g. '" +
                stored.begin()->first + "'");

  // timm's _ols models (convnext_atto_ols ...) start with an overlapping stem: two 3×3 stride-2
  // convolutions (stem.0, stem.1, or stem.0, act, stem.2) and then the LayerNorm. ConvNextConfig's
  // stem is one patch_size × patch_size convolution of stride patch_size; no config expresses it.
  if (m.naming == Naming::Timm) {
    const auto s1 = stripped.find("stem.1.weight");
    if (stripped.count("stem.2.weight") || (s1 != stripped.end() && s1->second.size() == 4))
      throw Error(origin + ": a timm '_ols' ConvNeXt (overlapping stem: 3x3 stride-2 convolutions 'stem.0' and '" +
                  std::string(stripped.count("stem.3.weight") ? "stem.2" : "stem.1") +
                  "', then a LayerNorm) cannot be expressed by ConvNextConfig, whose stem is one patch_size x patch_size "
                  "stride-patch_size convolution; convert a timm model without the _ols suffix");
  }

  std::map<std::string, std::string> stored_of;  // hf name -> stored name, to catch two names mapping to one
  for (const auto& [name, shape] : stripped) {
    const std::string full = m.stripped_prefix + name;
    const std::string hf = map_key_name(m.naming, name);
    if (hf.empty())
      throw Error(origin + ": tensor '" + full + "' has no transformers equivalent (the state dict looks like " +
                  naming_name(m.naming) + " ConvNeXt)");
    if (auto [it, fresh] = stored_of.emplace(hf, full); !fresh)
      throw Error(origin + ": tensors '" + it->second + "' and '" + full + "' both map to '" + hf + "'");
    m.hf_of[full] = hf;
    Shape s = shape;
    if (m.naming != Naming::Transformers) {
      // torchvision's layer_scale [C,1,1]; timm's 1x1-conv MLP [O,I,1,1]; timm's GRN [C'].
      if (hf.ends_with("layer_scale_parameter") && s.size() == 3 && s[1] == 1 && s[2] == 1) s = {s[0]};
      if ((hf.ends_with("pwconv1.weight") || hf.ends_with("pwconv2.weight")) && s.size() == 4 && s[2] == 1 && s[3] == 1)
        s = {s[0], s[1]};
      if ((hf.ends_with(".grn.weight") || hf.ends_with(".grn.bias")) && s.size() == 1) s = {1, 1, 1, s[0]};
    }
    m.hf_shape[hf] = s;
  }
  // A state dict with GRN is ConvNeXt V2, whose ForImageClassification keeps its body under
  // "convnextv2." (the transformers names keep whatever prefix they have).
  if (m.naming != Naming::Transformers) {
    bool v2 = false;
    for (const auto& [hf, shape] : m.hf_shape) v2 = v2 || hf.find(".grn.") != std::string::npos;
    if (v2) {
      auto v2_name = [](const std::string& n) { return n.starts_with("convnext.") ? "convnextv2." + n.substr(9) : n; };
      std::map<std::string, Shape> shapes;
      for (auto& [stored_name, hf] : m.hf_of) hf = v2_name(hf);
      for (const auto& [hf, shape] : m.hf_shape) shapes[v2_name(hf)] = shape;
      m.hf_shape = std::move(shapes);
    }
  }
  return m;
}

ConvNextConfig infer_config(const std::map<std::string, Shape>& t0, const std::string& origin, std::vector<std::string>& notes) {
  // Work on (V1) ForImageClassification names; GRN tensors make it ConvNeXt V2.
  std::map<std::string, Shape> t;
  bool v2 = false;
  for (const auto& [name0, shape] : t0) {
    const std::string name = name0.starts_with("convnextv2.") ? "convnext." + name0.substr(11) : name0;
    v2 = v2 || name.find(".grn.") != std::string::npos;
    t[name.starts_with("classifier.") || name.starts_with("convnext.") || name.starts_with("hidden_states_norms.") ? name
                                                                                                                  : "convnext." + name] = shape;
  }
  auto fail = [&](const std::string& what) -> Error { return Error(origin + ": cannot infer the config: " + what); };
  ConvNextConfig c;
  auto pit = t.find("convnext.embeddings.patch_embeddings.weight");
  if (pit == t.end() || pit->second.size() != 4 || pit->second[2] != pit->second[3])
    throw fail("no stem convolution weight [C, channels, p, p]");
  c.num_channels = pit->second[1];
  c.patch_size = pit->second[2];
  // Stages and blocks from the names.
  std::map<int64_t, std::set<int64_t>> blocks;
  for (const auto& [name, shape] : t) {
    if (!name.starts_with(kStages)) continue;
    const std::vector<std::string> p = split(name.substr(kStages.size()));
    if (p.empty() || !is_index(p[0])) continue;
    const int64_t s = std::stoll(p[0]);
    blocks[s];
    if (p.size() >= 3 && p[1] == "layers" && is_index(p[2])) blocks[s].insert(std::stoll(p[2]));
  }
  if (blocks.empty()) throw fail("no encoder stages");
  const int64_t num_stages = blocks.rbegin()->first + 1;
  c.depths.assign(static_cast<size_t>(num_stages), 0);
  c.hidden_sizes.assign(static_cast<size_t>(num_stages), 0);
  for (int64_t s = 0; s < num_stages; ++s) {
    const std::string sp = kStages + std::to_string(s) + ".";
    const auto& b = blocks[s];
    if (!b.empty() && (*b.begin() != 0 || *b.rbegin() + 1 != static_cast<int64_t>(b.size())))
      throw fail("the blocks of stage " + std::to_string(s) + " are not numbered 0.." + std::to_string(b.size() - 1));
    c.depths[static_cast<size_t>(s)] = static_cast<int64_t>(b.size());
    int64_t width = 0;
    if (auto it = t.find(sp + "layers.0.dwconv.weight"); it != t.end() && !it->second.empty()) width = it->second[0];
    else if (auto d = t.find(sp + "downsampling_layer.1.weight"); d != t.end() && !d->second.empty()) width = d->second[0];
    else if (s == 0) width = pit->second[0];
    else width = c.hidden_sizes[static_cast<size_t>(s - 1)];
    c.hidden_sizes[static_cast<size_t>(s)] = width;
  }
  c.num_stages = num_stages;
  if (v2) c.model_type = "convnextv2";
  c.layer_scale_init_value = has_prefix(t, kStages) && [&] {
    for (const auto& [name, shape] : t)
      if (name.ends_with(".layer_scale_parameter")) return true;
    return false;
  }() ? 1e-6 : 0.0;
  c.layer_norm_eps = 1e-6;
  int64_t labels = 0;
  if (auto it = t.find("classifier.weight"); it != t.end()) {
    if (it->second.size() != 2) throw fail("classifier.weight is not a matrix");
    labels = it->second[0];
  }
  c.set_num_labels(labels);
  c.architectures = {architecture_name(labels > 0 ? Architecture::ForImageClassification : Architecture::Model, v2)};
  c.stage_names.clear();
  c.out_features.clear();
  c.out_indices.clear();
  c.validate_and_align();
  notes.push_back("no config.json: config inferred from the tensor shapes");
  notes.push_back("inferred depths " + list(c.depths) + " (blocks per stage), hidden_sizes " + list(c.hidden_sizes));
  notes.push_back("inferred num_channels " + std::to_string(c.num_channels) + ", patch_size " + std::to_string(c.patch_size) +
                  " (stem convolution)");
  notes.push_back(labels > 0 ? "inferred num_labels " + std::to_string(labels) + " (head), architecture " + c.architectures[0]
                             : "no classification head: num_labels 0, architecture " + c.architectures[0]);
  if (v2) notes.push_back("GRN tensors present: ConvNeXt V2 (model_type convnextv2)");
  else
    notes.push_back(c.layer_scale_init_value > 0 ? "layer scale present: layer_scale_init_value 1e-06"
                                                 : "no layer scale tensors: layer_scale_init_value 0");
  notes.push_back("layer_norm_eps " + fmt(c.layer_norm_eps) + " for the final LayerNorm (timm, facebookresearch and torchvision use 1e-6)");
  notes.push_back("hidden_act gelu (exact), image_size 224, generic labels LABEL_i (defaults)");
  return c;
}

}  // namespace convnext::io
