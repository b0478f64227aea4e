// Parameters of the network: shapes from the config, transformers names, initialisation,
// loading from a checkpoint with strict checks, saving.
#include "model/parameters.h"

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "convnext/error.h"
#include "core/memory.h"
#include "io/checkpoint.h"
#include "io/hub_cache.h"
#include "io/key_mapping.h"
#include "io/safetensors.h"

namespace convnext::detail {

Parameters::Parameters(const ConvNextConfig& cfg, Architecture a) : config(cfg), arch(a) {
  config.validate_and_align();
  act = config.activation();
  const auto& hs = config.hidden_sizes;
  const int64_t p = config.patch_size, cin = config.num_channels;
  patch_weight = Tensor({hs[0], cin, p, p});
  patch_bias = Tensor({hs[0]});
  embed_norm = {Tensor({hs[0]}), Tensor({hs[0]})};
  for (int64_t s = 0; s < config.num_stages; ++s) {
    StageParams st;
    st.in_channels = s == 0 ? hs[0] : hs[static_cast<size_t>(s - 1)];
    st.out_channels = hs[static_cast<size_t>(s)];
    st.stride = s > 0 ? 2 : 1;
    // As ConvNextStage: a downsampling layer exists iff the width changes or the stride is > 1.
    st.has_downsample = st.in_channels != st.out_channels || st.stride > 1;
    if (st.has_downsample) {
      st.down_norm = {Tensor({st.in_channels}), Tensor({st.in_channels})};
      st.down_weight = Tensor({st.out_channels, st.in_channels, 2, 2});
      st.down_bias = Tensor({st.out_channels});
    }
    const int64_t C = st.out_channels;
    for (int64_t j = 0; j < config.depths[static_cast<size_t>(s)]; ++j) {
      BlockParams b;
      b.dw_weight = Tensor({C, 1, 7, 7});
      b.dw_bias = Tensor({C});
      b.norm = {Tensor({C}), Tensor({C})};
      b.pw1_weight = Tensor({4 * C, C});
      b.pw1_bias = Tensor({4 * C});
      b.pw2_weight = Tensor({C, 4 * C});
      b.pw2_bias = Tensor({C});
      if (config.has_layer_scale()) b.layer_scale = Tensor({C});
      if (config.is_v2()) {
        b.grn_weight = Tensor({1, 1, 1, 4 * C});
        b.grn_bias = Tensor({1, 1, 1, 4 * C});
      }
      st.blocks.push_back(std::move(b));
    }
    stages.push_back(std::move(st));
  }
  const int64_t last = hs[static_cast<size_t>(config.num_stages - 1)];
  if (arch != Architecture::Backbone) final_norm = {Tensor({last}), Tensor({last})};
  if (arch == Architecture::ForImageClassification && config.num_labels() > 0) {
    classifier_weight = Tensor({config.num_labels(), last});
    classifier_bias = Tensor({config.num_labels()});
  }
  if (arch == Architecture::Backbone) {
    for (int64_t idx : config.out_indices) {
      if (idx > config.num_stages)
        throw Error("out_indices " + std::to_string(idx) + " is beyond num_stages " + std::to_string(config.num_stages));
      const int64_t ch = idx == 0 ? hs[0] : hs[static_cast<size_t>(idx - 1)];
      backbone_norms.push_back({Tensor({ch}), Tensor({ch})});
    }
  }
  for_each_parameter([&](const std::string&, Tensor& t) { parameter_count += t.numel(); });
}

void release_tensor(Tensor& t) {
  if (t.borrowed()) release_pages(t.data(), static_cast<size_t>(t.numel()) * sizeof(float));
  t = Tensor();
}

void Parameters::for_each_parameter(const std::function<void(const std::string&, Tensor&)>& fn) {
  const std::string pre = arch == Architecture::ForImageClassification ? body_prefix() : "";
  fn(pre + "embeddings.patch_embeddings.weight", patch_weight);
  fn(pre + "embeddings.patch_embeddings.bias", patch_bias);
  fn(pre + "embeddings.layernorm.weight", embed_norm.weight);
  fn(pre + "embeddings.layernorm.bias", embed_norm.bias);
  for (size_t s = 0; s < stages.size(); ++s) {
    StageParams& st = stages[s];
    const std::string sp = pre + "encoder.stages." + std::to_string(s) + ".";
    if (st.has_downsample) {
      fn(sp + "downsampling_layer.0.weight", st.down_norm.weight);
      fn(sp + "downsampling_layer.0.bias", st.down_norm.bias);
      fn(sp + "downsampling_layer.1.weight", st.down_weight);
      fn(sp + "downsampling_layer.1.bias", st.down_bias);
    }
    for (size_t j = 0; j < st.blocks.size(); ++j) {
      BlockParams& b = st.blocks[j];
      const std::string lp = sp + "layers." + std::to_string(j) + ".";
      if (!b.layer_scale.empty()) fn(lp + "layer_scale_parameter", b.layer_scale);
      fn(lp + "dwconv.weight", b.dw_weight);
      fn(lp + "dwconv.bias", b.dw_bias);
      fn(lp + "layernorm.weight", b.norm.weight);
      fn(lp + "layernorm.bias", b.norm.bias);
      fn(lp + "pwconv1.weight", b.pw1_weight);
      fn(lp + "pwconv1.bias", b.pw1_bias);
      if (!b.grn_weight.empty()) {  // ConvNextV2Layer registers grn between pwconv1 and pwconv2
        fn(lp + "grn.weight", b.grn_weight);
        fn(lp + "grn.bias", b.grn_bias);
      }
      fn(lp + "pwconv2.weight", b.pw2_weight);
      fn(lp + "pwconv2.bias", b.pw2_bias);
    }
  }
  if (!final_norm.weight.empty()) {
    fn(pre + "layernorm.weight", final_norm.weight);
    fn(pre + "layernorm.bias", final_norm.bias);
  }
  for (size_t k = 0; k < backbone_norms.size(); ++k) {
    const std::string np = "hidden_states_norms." + config.out_features[k] + ".";
    fn(np + "weight", backbone_norms[k].weight);
    fn(np + "bias", backbone_norms[k].bias);
  }
  if (!classifier_weight.empty()) {
    fn("classifier.weight", classifier_weight);
    fn("classifier.bias", classifier_bias);
  }
}

void Parameters::init_parameter(const std::string& name, Tensor& t, uint64_t seed) const {
  // Seed per parameter from its name, so a head initialised alone equals the same head
  // initialised with the whole network.
  const uint64_t h = std::hash<std::string>{}(name) ^ (seed * 0x9E3779B97F4A7C15ull);
  std::mt19937_64 rng(h);
  const bool is_norm = name.find("layernorm") != std::string::npos || name.find("downsampling_layer.0") != std::string::npos ||
                       name.find("hidden_states_norms") != std::string::npos;
  float* d = t.data();
  const int64_t n = t.numel();
  if (name.ends_with(".grn.weight") || name.ends_with(".grn.bias")) {  // ConvNextV2PreTrainedModel._init_weights
    for (int64_t i = 0; i < n; ++i) d[i] = 0.0f;
  } else if (name.ends_with("layer_scale_parameter")) {
    for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(config.layer_scale_init_value);
  } else if (name.ends_with(".bias")) {
    for (int64_t i = 0; i < n; ++i) d[i] = 0.0f;
  } else if (is_norm) {
    for (int64_t i = 0; i < n; ++i) d[i] = 1.0f;
  } else {
    std::normal_distribution<float> dist(0.0f, static_cast<float>(config.initializer_range));
    for (int64_t i = 0; i < n; ++i) d[i] = dist(rng);
  }
}

void Parameters::init_weights(uint64_t seed) {
  for_each_parameter([&](const std::string& name, Tensor& t) { init_parameter(name, t, seed); });
}

namespace {

bool is_head_parameter(const std::string& name) {
  return name.starts_with("classifier.") || name.starts_with("hidden_states_norms.") || name.starts_with("layernorm.") ||
         name.starts_with("convnext.layernorm.") || name.starts_with("convnextv2.layernorm.");
}

// The name without the ForImageClassification body prefix ("convnext." or "convnextv2.").
std::string strip_body_prefix(const std::string& name) {
  for (const char* p : {"convnext.", "convnextv2."})
    if (name.starts_with(p)) return name.substr(std::string(p).size());
  return name;
}

}  // namespace

// The checkpoint's names mapped to transformers' (timm, facebookresearch, torchvision), and its
// config: config.json of the directory or, without one, inferred from a non-transformers state
// dict's shapes (transformers names keep requiring their config.json, as in transformers).
ConvNextConfig resolve_config(const std::string& path, io::Checkpoint& ckpt, std::vector<std::string>& notes) {
  std::map<std::string, Shape> stored;
  for (const std::string& n : ckpt.names()) stored[n] = ckpt.shape(n);
  const io::KeyMapping mapping = io::map_key_names(stored, ckpt.origin());
  if (mapping.naming != io::Naming::Transformers || !mapping.stripped_prefix.empty()) {
    ckpt.rename(mapping.hf_of, mapping.hf_shape);
    notes.push_back(std::string("tensor names: ") + io::naming_name(mapping.naming) +
                    (mapping.stripped_prefix.empty() ? "" : " with prefix '" + mapping.stripped_prefix + "'") +
                    ", mapped to transformers names");
  }
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(path, ec);
  if (mapping.naming == io::Naming::Transformers && !dir)
    throw Error(path + ": transformers-named weights need their config.json: pass the directory holding both");
  if (mapping.naming == io::Naming::Transformers || std::filesystem::exists(std::filesystem::path(path) / "config.json", ec))
    return ConvNextConfig::from_file(path);
  std::map<std::string, Shape> served;
  for (const std::string& n : ckpt.names()) served[n] = ckpt.shape(n);
  return io::infer_config(served, ckpt.origin(), notes);
}

namespace {

// Fills a Parameters from an open checkpoint, tensor by tensor, with transformers' rules for what
// may differ: a head the checkpoint's own class lacks starts fresh, a shape mismatch is fresh
// with ignore_mismatched_sizes, anything else missing, misshapen or left over is an Error.
class CheckpointFiller {
 public:
  CheckpointFiller(io::Checkpoint& ckpt, Parameters& params, const LoadOptions& options, Architecture saved_arch)
      : ckpt_(ckpt), params_(params), options_(options), saved_arch_(saved_arch), prefix_(params.body_prefix()),
        has_prefix_(ckpt.contains(prefix_ + "embeddings.patch_embeddings.weight")) {}

  void fill() {
    params_.for_each_parameter([&](const std::string& name, Tensor& t) { fill_one(name, t); });
    for (const std::string& name : ckpt_.names())
      if (!used_.count(name)) leftover(name);
  }

 private:
  // The checkpoint's name of a parameter: the body under "convnext." ("convnextv2.") when the
  // classifier saved it.
  std::string source_name(const std::string& name) const {
    if (name.starts_with("classifier.") || name.starts_with("hidden_states_norms.")) return name;
    const std::string bare = strip_body_prefix(name);
    return has_prefix_ ? prefix_ + bare : bare;
  }
  std::string stored_as(const std::string& n) const {
    const std::string s = ckpt_.stored_name(n);
    return s == n ? std::string() : " (stored as '" + s + "')";
  }
  bool other_class() const { return params_.arch != saved_arch_; }

  void fill_one(const std::string& name, Tensor& t) {
    const std::string src = source_name(name);
    if (!ckpt_.contains(src)) {
      if (!(other_class() && is_head_parameter(name)))
        throw Error(ckpt_.origin() + ": missing tensor '" + src + "' (expected shape " + shape_str(t.shape()) + ")");
      params_.init_parameter(name, t, options_.seed);  // a head the checkpoint's class lacks, as in transformers
      params_.warnings.push_back("'" + name + "' is not in the checkpoint (saved as " +
                                 architecture_name(saved_arch_, params_.config.is_v2()) +
                                 "): newly initialised");
      return;
    }
    used_.insert(src);
    const Shape have = ckpt_.shape(src);
    if (have == t.shape()) {
      t = ckpt_.get(src);
      return;
    }
    if (!options_.ignore_mismatched_sizes)
      throw Error(ckpt_.origin() + ": tensor '" + src + "'" + stored_as(src) + " has shape " + shape_str(have) +
                  ", the config expects " + shape_str(t.shape()) +
                  (name.starts_with("classifier.") ? " (a different number of labels? see --ignore-mismatched-sizes)" : ""));
    params_.init_parameter(name, t, options_.seed);
    params_.warnings.push_back("'" + src + "' has shape " + shape_str(have) + " in the checkpoint and " +
                               shape_str(t.shape()) + " in the model: newly initialised (ignore_mismatched_sizes)");
  }

  void leftover(const std::string& name) {
    const std::string bare = strip_body_prefix(name);
    if (other_class() && (is_head_parameter(name) || is_head_parameter(bare))) {
      params_.warnings.push_back("'" + name + "' is not used by " + std::string(architecture_name(params_.arch, params_.config.is_v2())));
      return;
    }
    throw Error(ckpt_.origin() + ": unexpected tensor '" + name + "'" + stored_as(name) + " (shape " +
                shape_str(ckpt_.shape(name)) + ") is not a parameter of " + architecture_name(params_.arch, params_.config.is_v2()) +
                " with this config");
  }

  io::Checkpoint& ckpt_;
  Parameters& params_;
  const LoadOptions& options_;
  const Architecture saved_arch_;
  const std::string prefix_;
  const bool has_prefix_;
  std::set<std::string> used_;
};

}  // namespace

std::shared_ptr<Parameters> Parameters::load(const std::string& model, const LoadOptions& options, Architecture arch,
                                             const std::function<void(Parameters&)>& pack) {
  const std::string path = io::resolve_model_path(model);  // a hub id ("facebook/convnext-tiny-224") → its cached snapshot
  io::Checkpoint ckpt = io::Checkpoint::open(path);
  std::vector<std::string> notes;
  ConvNextConfig config = resolve_config(path, ckpt, notes);
  const Architecture saved_arch = config.architecture();
  if (options.num_labels) config.set_num_labels(*options.num_labels);
  config.architectures = {architecture_name(arch, config.is_v2())};
  auto params = std::make_shared<Parameters>(config, arch);
  params->warnings = notes;
  params->weights_format = ckpt.format();
  params->weights_dtype = ckpt.dtype_summary();
  params->weights_bytes = ckpt.file_bytes();
  CheckpointFiller(ckpt, *params, options, saved_arch).fill();
  if (pack) pack(*params);
  if (options.inference_only) ckpt.release_resident_pages();  // what packing touched of the small tensors too
  return params;
}

void check_pixel_values(const ConvNextConfig& config, const Tensor& px) {
  if (px.ndim() != 4)
    throw Error("pixel_values must have 4 dimensions [N, C, H, W], got shape " + shape_str(px.shape()));
  if (px.dim(1) != config.num_channels)
    throw Error("Make sure that the channel dimension of the pixel values match with the one set in the configuration "
                "(pixel_values has " + std::to_string(px.dim(1)) + " channels, num_channels is " +
                std::to_string(config.num_channels) + ")");
  if (px.dim(0) < 1) throw Error("pixel_values has batch size 0");
  // Every stage after the first starts with a stride-2 downsampling (ConvNextStage).
  int64_t h = px.dim(2) / config.patch_size, w = px.dim(3) / config.patch_size;
  int64_t need = config.patch_size;
  for (int64_t s = 0; s < config.num_stages; ++s) {
    if (s > 0) {
      h /= 2;
      w /= 2;
      need *= 2;
    }
    if (h < 1 || w < 1)
      throw Error("input " + std::to_string(px.dim(2)) + "x" + std::to_string(px.dim(3)) +
                  " is too small for this model: the stem (patch " + std::to_string(config.patch_size) + ") and " +
                  std::to_string(config.num_stages - 1) + " stride-2 downsamplings need at least " +
                  std::to_string(need) + "x" + std::to_string(need));
  }
}

void save_parameters(Parameters& params, const std::string& dir, const std::string& dtype) {
  const DType d = parse_dtype(dtype);  // "float16", "f16", "torch.float16", ...
  if (d == DType::I8)
    throw Error("int8 is an arithmetic, not a storage format: save in f32, f16 or bf16 (a model runs int8 from any of "
                "them with --dtype int8)");
  if (params.released)
    throw Error("this model was loaded with LoadOptions::inference_only, which releases the original weights; "
                "load it with inference_only = false to save it");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory (" + ec.message() + ")");
  ConvNextConfig config = params.config;
  config.dtype = dtype;
  config.save((std::filesystem::path(dir) / "config.json").string());
  io::SafetensorsWriter w;
  w.set_metadata("format", "pt");
  params.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (d == DType::F16) w.add_f16(name, t);
    else if (d == DType::BF16) w.add_bf16(name, t);
    else w.add(name, t);
  });
  w.save((std::filesystem::path(dir) / "model.safetensors").string());
}

}  // namespace convnext::detail

namespace convnext {

ConvNextConfig config_of_checkpoint(const std::string& model) {
  const std::string path = io::resolve_model_path(model);
  io::Checkpoint ckpt = io::Checkpoint::open(path);
  std::vector<std::string> notes;
  return detail::resolve_config(path, ckpt, notes);
}

}  // namespace convnext
