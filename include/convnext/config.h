// ConvNextConfig: every field of transformers' ConvNextConfig (and the PretrainedConfig fields a
// ConvNeXt checkpoint uses), read from and written to config.json. The same struct is
// transformers' ConvNextV2Config when model_type is "convnextv2": ConvNeXt V2 (GRN in every
// block, no layer scale; layer_scale_init_value is then neither used nor written).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "convnext/export.h"

namespace convnext {

// The activations of transformers' ACT2FN that a ConvNeXt block can use.
enum class Activation {
  Gelu,        // "gelu", "gelu_python": 0.5·x·(1+erf(x/√2)) (exact)
  GeluTanh,    // "gelu_new", "gelu_pytorch_tanh", "gelu_accurate": tanh approximation
  GeluFast,    // "gelu_fast": 0.5·x·(1+tanh(0.7978845608·x·(1+0.044715·x²)))
  QuickGelu,   // "quick_gelu": x·σ(1.702·x)
  Gelu10,      // "gelu_10": exact gelu clipped to [-10, 10]
  Relu,        // "relu"
  Relu6,       // "relu6"
  Relu2,       // "relu2": relu(x)²
  LeakyRelu,   // "leaky_relu": slope 0.01
  Silu,        // "silu", "swish"
  Selu,        // "selu"
  Sigmoid,     // "sigmoid"
  Tanh,        // "tanh"
  Mish,        // "mish"
  Linear,      // "linear": identity
};
// Parses an ACT2FN name; throws Error listing the supported names otherwise.
CONVNEXT_API Activation parse_activation(const std::string& name);

// transformers' rule for a config without problem_type: one label → "regression"; integer labels
// → "single_label_classification"; otherwise "multi_label_classification".
CONVNEXT_API std::string infer_problem_type(int64_t num_labels, bool integer_labels);

enum class Architecture { Model, ForImageClassification, Backbone };
// transformers' class name: "ConvNextModel", ..., or with `v2` "ConvNextV2Model", ...
CONVNEXT_API const char* architecture_name(Architecture a, bool v2 = false);

struct CONVNEXT_API ConvNextConfig {
  // "convnext" (ConvNeXT V1) or "convnextv2" (ConvNeXt V2: dwconv → LayerNorm → pwconv1 → act →
  // GRN → pwconv2, no layer scale; parameters under "convnextv2." in ForImageClassification).
  std::string model_type = "convnext";
  int64_t num_channels = 3;
  int64_t patch_size = 4;
  int64_t num_stages = 4;
  std::vector<int64_t> hidden_sizes = {96, 192, 384, 768};
  std::vector<int64_t> depths = {3, 3, 9, 3};
  std::string hidden_act = "gelu";
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;  // only the final pooled LayerNorm; every other LN uses 1e-6
  double layer_scale_init_value = 1e-6;
  double drop_path_rate = 0.0;
  int64_t image_size = 224;
  std::vector<std::string> stage_names;  // derived: stem, stage1..stage{len(depths)}
  std::vector<std::string> out_features;  // aligned with out_indices
  std::vector<int64_t> out_indices;
  std::map<int64_t, std::string> id2label;  // its size is num_labels
  std::optional<std::string> problem_type;  // regression | single_label_classification | multi_label_classification
  std::vector<std::string> architectures = {"ConvNextForImageClassification"};
  std::string dtype = "float32";

  // Defaults exactly as ConvNextConfig() (2 labels, as PretrainedConfig gives without id2label).
  ConvNextConfig();

  bool is_v2() const { return model_type == "convnextv2"; }
  // Whether the blocks have a layer_scale_parameter (V1 with layer_scale_init_value > 0).
  bool has_layer_scale() const { return !is_v2() && layer_scale_init_value > 0; }
  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }
  void set_num_labels(int64_t n);  // LABEL_0 ... LABEL_{n-1}
  Activation activation() const { return parse_activation(hidden_act); }
  // The loss ConvNextForImageClassification uses: problem_type when set, else transformers'
  // rule (one label → regression; integer labels → single-label; otherwise multi-label).
  std::string resolved_problem_type(bool integer_labels = true) const;
  Architecture architecture() const;

  // Checks the fields (sizes, lengths, activation) and aligns out_features/out_indices as
  // transformers does; throws Error naming the field.
  void validate_and_align();

  static ConvNextConfig from_json_string(const std::string& text, const std::string& origin = "config.json");
  static ConvNextConfig from_file(const std::string& path);  // a config.json or a directory holding one
  std::string to_json_string() const;  // sorted keys, indent 2, as save_pretrained writes
  void save(const std::string& path) const;

  // Presets. V1: tiny, small, base, large, xlarge (convert_convnext_to_pytorch.py) and timm's
  // atto, femto, pico, nano. V2 (convert_convnextv2_to_pytorch.py): v2-atto, v2-femto, v2-pico,
  // v2-nano, v2-tiny, v2-base, v2-large, v2-huge ("convnextv2-tiny" is read as "v2-tiny").
  // num_labels 1000 (ImageNet-1k) or 21841 (ImageNet-22k).
  static ConvNextConfig preset(const std::string& name, int64_t num_labels = 1000);
  static std::vector<std::string> preset_names();
  // The preset whose model type, depths and widths match, or "" (for `convnext info`).
  std::string variant_name() const;
};

}  // namespace convnext
