// The ConvNeXt network behind the three public classes: its parameters under their
// transformers names, the inference-ready (packed, folded) form of them, and the forward pass.
#pragma once
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/model.h"
#include "convnext/tensor.h"
#include "kernels/kernels.h"

namespace convnext::detail {

struct LayerNormParams {
  Tensor weight, bias;
};

// ConvNextLayer: dwconv 7×7 → LayerNorm → pwconv1 → act → pwconv2 → × layer scale → + residual.
struct Block {
  Tensor dw_weight, dw_bias;  // [C,1,7,7], [C]
  LayerNormParams norm;       // [C]
  Tensor pw1_weight, pw1_bias, pw2_weight, pw2_bias;  // [4C,C], [4C], [C,4C], [C]
  Tensor layer_scale;         // [C], empty when layer_scale_init_value <= 0
  // Inference form: taps as [49][C]; LayerNorm's γ,β folded into pwconv1; layer scale into pwconv2.
  std::vector<float> dw_taps;
  kernels::PackedLinear pw1, pw2;
};

// ConvNextStage: optional downsampling (LayerNorm, 2×2 stride-2 conv), then the blocks.
struct Stage {
  int64_t in_channels = 0, out_channels = 0, stride = 1;
  bool has_downsample = false;
  LayerNormParams down_norm;
  Tensor down_weight, down_bias;  // [C_out, C_in, 2, 2]
  kernels::PackedLinear down;     // as a GEMM over 2×2 patches
  std::vector<Block> blocks;
};

struct Network {
  ConvNextConfig config;
  Architecture arch = Architecture::ForImageClassification;
  Activation act = Activation::Gelu;

  Tensor patch_weight, patch_bias;  // embeddings.patch_embeddings: [C0, C_in, p, p]
  LayerNormParams embed_norm;       // embeddings.layernorm (eps 1e-6)
  kernels::PackedLinear patch;
  std::vector<Stage> stages;
  LayerNormParams final_norm;     // layernorm (eps = config.layer_norm_eps); Model and classifier
  Tensor classifier_weight, classifier_bias;  // [num_labels, C_last]; absent when num_labels == 0
  kernels::PackedLinear classifier;
  std::vector<LayerNormParams> backbone_norms;  // hidden_states_norms.<out_feature>, in out_features order

  // Activation buffers reused by every forward pass (grown when an input needs more), so the
  // hot path allocates only its outputs. One forward at a time per model uses them.
  struct Workspace {
    std::vector<float> map[2], normed, hidden, patches;
  };
  mutable Workspace workspace;
  mutable std::mutex workspace_mutex;

  // Wall time of each part of the last run_encoder, recorded only while `profile` is set (convnext
  // bench --profile): "embeddings", then per stage "stageN.downsample" (stages 2…) and "stageN.blocks",
  // then "pooling" (the NCHW copy and the mean over H, W).
  struct ForwardProfile {
    std::vector<std::string> parts;
    std::vector<double> ms;
  };
  mutable ForwardProfile* profile = nullptr;

  std::string weights_format = "new";
  std::string weights_dtype;   // as stored in the checkpoint ("float16", ...); empty for fresh weights
  int64_t weights_bytes = 0;   // the size of the checkpoint's weight files
  bool inference_only = false;  // the original weight matrices were released (see LoadOptions)
  Precision precision = Precision::F32;  // of the packed GEMM weights
  int64_t parameter_count = 0;
  std::vector<std::string> warnings;

  // Builds the parameter tensors for `config` and `arch` (zero-filled; see init_weights).
  Network(const ConvNextConfig& config, Architecture arch);

  // Every parameter with its transformers state-dict name, in the order of model.state_dict().
  void for_each_parameter(const std::function<void(const std::string& name, Tensor& t)>& fn);
  // transformers' _init_weights: N(0, initializer_range) for conv/linear weights, 0 biases,
  // LayerNorm 1/0, layer scale = layer_scale_init_value.
  void init_weights(uint64_t seed);
  // One parameter, initialised as init_weights would (for replaced or missing heads).
  void init_parameter(const std::string& name, Tensor& t, uint64_t seed) const;
  // Packs and folds the parameters for inference; call after the parameters change.
  // With `release_originals` each weight matrix is released as soon as it is packed (and its
  // mapped pages handed back), so memory never holds both forms of the whole model.
  void prepare(bool release_originals = false);

  // Loads config.json and the weights of `path` as `arch`.
  static std::shared_ptr<Network> load(const std::string& path, const LoadOptions& options, Architecture arch);

  // Forward pass. Input NCHW; the NHWC results each head needs are returned.
  struct Result {
    Tensor last_hidden_state;           // NCHW
    Tensor pooled;                      // [N, C_last] before the final LayerNorm
    std::vector<Tensor> hidden_nhwc;    // every stage output (NHWC) when kept
    std::vector<Shape> hidden_shapes;   // [N, H, W, C] of each
  };
  Result run_encoder(const Tensor& pixel_values, bool keep_hidden) const;
  // Grows the workspace for an [N, C, H, W] input (call with workspace_mutex held, or before the
  // model is shared); returns the stages' feature-map shapes.
  struct Sizes reserve_workspace(int64_t N, int64_t H, int64_t W) const;
  // At load: the workspace for one image of config.image_size, so a first forward at that size
  // allocates only its outputs.
  void reserve_default_workspace() const;
  void check_input(const Tensor& pixel_values) const;
};

Tensor nhwc_to_nchw(const Tensor& x);  // [N,H,W,C] → [N,C,H,W]

// config.json + model.safetensors as save_pretrained writes them (dtype float32/float16/bfloat16).
void save_network(Network& net, const std::string& dir, const std::string& dtype = "float32");
// ConvNextForImageClassification's logits through the inference kernels (prepare() first).
Tensor classify_logits(const Network& net, const Tensor& pixel_values);

}  // namespace convnext::detail
