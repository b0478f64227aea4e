// What a ConvNeXt model is: its config and its parameters under transformers' names, as
// load, save, convert and training see them. How it runs (the weights packed for one dtype, a
// workspace, the tile schedule) is an InferencePlan built from these (model/plan.h).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/model.h"
#include "convnext/tensor.h"

namespace convnext::detail {

struct LayerNormParams {
  Tensor weight, bias;
};

// ConvNextLayer: dwconv 7×7 → LayerNorm → pwconv1 → act → pwconv2 → × layer scale → + residual.
// ConvNextV2Layer: dwconv 7×7 → LayerNorm → pwconv1 → act → GRN → pwconv2 → + residual.
struct BlockParams {
  Tensor dw_weight, dw_bias;  // [C,1,7,7], [C]
  LayerNormParams norm;       // [C]
  Tensor pw1_weight, pw1_bias, pw2_weight, pw2_bias;  // [4C,C], [4C], [C,4C], [C]
  Tensor layer_scale;         // [C], empty when layer_scale_init_value <= 0 (and in V2)
  Tensor grn_weight, grn_bias;  // V2 only: GRN's γ and β, [1,1,1,4C] as transformers stores them
};

// ConvNextStage: optional downsampling (LayerNorm, 2×2 stride-2 conv), then the blocks.
struct StageParams {
  int64_t in_channels = 0, out_channels = 0, stride = 1;
  bool has_downsample = false;
  LayerNormParams down_norm;
  Tensor down_weight, down_bias;  // [C_out, C_in, 2, 2]
  std::vector<BlockParams> blocks;
};

struct Parameters {
  ConvNextConfig config;
  Architecture arch = Architecture::ForImageClassification;
  Activation act = Activation::Gelu;

  Tensor patch_weight, patch_bias;  // embeddings.patch_embeddings: [C0, C_in, p, p]
  LayerNormParams embed_norm;       // embeddings.layernorm (eps 1e-6)
  std::vector<StageParams> stages;
  LayerNormParams final_norm;     // layernorm (eps = config.layer_norm_eps); Model and classifier
  Tensor classifier_weight, classifier_bias;  // [num_labels, C_last]; absent when num_labels == 0
  std::vector<LayerNormParams> backbone_norms;  // hidden_states_norms.<out_feature>, in out_features order

  // Where they came from.
  std::string weights_format = "new";
  std::string weights_dtype;   // as stored in the checkpoint ("float16", ...); empty for fresh weights
  int64_t weights_bytes = 0;   // the size of the checkpoint's weight files
  std::vector<std::string> warnings;
  int64_t parameter_count = 0;
  // The weight matrices were released once an inference plan packed them (LoadOptions::
  // inference_only): what is left cannot be saved, trained or packed again.
  bool released = false;

  // Builds the parameter tensors for `config` and `arch` (zero-filled; see init_weights).
  Parameters(const ConvNextConfig& config, Architecture arch);

  // "convnext." or "convnextv2.": where ForImageClassification keeps the body (base_model_prefix).
  const char* body_prefix() const { return config.is_v2() ? "convnextv2." : "convnext."; }
  // Every parameter with its transformers state-dict name, in the order of model.state_dict().
  void for_each_parameter(const std::function<void(const std::string& name, Tensor& t)>& fn);
  // transformers' _init_weights: N(0, initializer_range) for conv/linear weights, 0 biases,
  // LayerNorm 1/0, layer scale = layer_scale_init_value, GRN γ and β 0 (GRN starts as the identity).
  void init_weights(uint64_t seed);
  // One parameter, initialised as init_weights would (for replaced or missing heads).
  void init_parameter(const std::string& name, Tensor& t, uint64_t seed) const;

  // Loads config.json and the weights of `path` (directory, hub id, any supported layout) as
  // `arch`, with strict checks of every name and shape. `pack`, when given, runs while the
  // checkpoint is still open (the model builds its inference plan there); with
  // options.inference_only the checkpoint's mapped pages are handed back after it.
  static std::shared_ptr<Parameters> load(const std::string& path, const LoadOptions& options, Architecture arch,
                                          const std::function<void(Parameters&)>& pack = {});
};

// Throws the one-line Error transformers' checks give for pixel_values this config cannot take
// (not 4-D, wrong channels, empty, smaller than the stem and downsamplings need).
void check_pixel_values(const ConvNextConfig& config, const Tensor& pixel_values);

// config.json + model.safetensors as save_pretrained writes them (dtype float32/float16/bfloat16).
void save_parameters(Parameters& params, const std::string& dir, const std::string& dtype = "float32");

// Frees a weight matrix: heap memory is released, and pages borrowed from a mapped checkpoint
// leave the process (they stay in the page cache).
void release_tensor(Tensor& t);

}  // namespace convnext::detail
