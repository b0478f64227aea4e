// How a model runs: its parameters packed for the kernels in one dtype (LayerNorm and layer
// scale folded in), the activation workspace, the tile schedule and the forward pass over them
// (forward.cpp). A plan keeps copies of the small vectors it needs, so it outlives the weight
// matrices it was packed from (LoadOptions::inference_only releases them).
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "convnext/context.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "model/parameters.h"

namespace convnext::detail {

// What one pass runs with: the public ExecutionContext resolved and checked.
struct Exec {
  kernels::Context kernels;
  bool contended = false;  // parallel::contended() when the pass began: it picks the tile schedule
  ForwardProfile* profile = nullptr;
};
// Threads 0 → num_threads(); negative or over 1024 → Error. Auto kernels → the CPU's family.
Exec resolve(const ExecutionContext& ctx);

struct NormPlan {
  std::vector<float> gamma, beta;
};

struct BlockPlan {
  std::vector<float> taps, dw_bias;  // the depthwise weight as [49][C]
  kernels::PackedLinear pw1, pw2;    // γ,β of the LayerNorm folded into pw1; the layer scale into pw2
  std::vector<float> grn_gamma, grn_beta;  // V2: GRN's γ and β [4C] (empty in V1)
};

struct StagePlan {
  int64_t in_channels = 0, out_channels = 0;
  bool has_downsample = false;
  NormPlan down_norm;
  kernels::PackedLinear down;  // the 2×2 stride-2 conv as a GEMM over patches
  std::vector<BlockPlan> blocks;
};

class InferencePlan {
 public:
  // Packs `params` for `dtype` (F32 or BF16; F16 arithmetic is an Error) with `ctx`'s threads.
  // With `release`, each weight matrix of `params` is released as soon as it is packed, so memory
  // never holds both forms of the whole model (params.released is then set).
  InferencePlan(Parameters& params, DType dtype, const kernels::Context& ctx, bool release);

  ConvNextConfig config;
  Architecture arch;
  Activation act;
  DType dtype;
  kernels::PackedLinear patch;
  NormPlan embed_norm;
  std::vector<StagePlan> stages;
  NormPlan final_norm;
  kernels::PackedLinear classifier;  // N == 0 when the model has none
  std::vector<NormPlan> backbone_norms;

  // The encoder on NCHW pixel_values: the NHWC maps each head needs.
  struct Result {
    Tensor last_hidden_state;         // NCHW
    Tensor pooled;                    // [N, C_last] before the final LayerNorm
    std::vector<Tensor> hidden_nhwc;  // every stage output (NHWC) when kept
  };
  Result run_encoder(const Exec& ex, const Tensor& pixel_values, bool keep_hidden) const;

  // The heads (heads.cpp): pooler_output = LayerNorm(pooled); logits = classifier(pooler_output)
  // (a copy of it without a classifier); the backbone's normalised maps (NCHW).
  Tensor pooler_output(const Exec& ex, const Tensor& pooled) const;
  Tensor logits(const Exec& ex, const Tensor& pooler_output) const;
  std::vector<Tensor> feature_maps(const Exec& ex, const Result& r) const;
  Tensor classify(const Exec& ex, const Tensor& pixel_values) const;  // logits straight from pixels

  // The workspace for one image of config.image_size at `threads`, so a first forward at that
  // size allocates only its outputs.
  void reserve_default_workspace(int threads) const;

 private:
  // Activation buffers reused by every pass (grown when an input needs more, never per call), so
  // the hot path allocates only its outputs. One pass at a time holds them. On 64-byte
  // boundaries: each pixel's row of 16-float vectors then lies in whole cache lines.
  struct Workspace {
    kernels::AlignedVector<float> map[2], normed, hidden, patches;
    std::vector<double> grn_sumsq;           // V2: each tile's GRN sums of squares
    kernels::AlignedVector<float> grn_scale;  // V2: 1 + γ·N per image and channel
  };
  mutable Workspace workspace_;
  mutable std::mutex workspace_mutex_;
  // Grows `ws` for an [N, ·, H, W] input; returns each stage's output shape.
  std::vector<MapShape> reserve(Workspace& ws, int64_t N, int64_t H, int64_t W, int threads) const;
};

Tensor nhwc_to_nchw(const kernels::Context& ctx, const Tensor& x);  // [N,H,W,C] → [N,C,H,W]

// A model object's state: its parameters and its plans. The plan for the load precision exists
// from the start; a pass asking for another dtype gets one packed from the parameters (kept).
class ModelState {
 public:
  static std::shared_ptr<ModelState> load(const std::string& path, const LoadOptions& options, Architecture arch);
  static std::shared_ptr<ModelState> fresh(const ConvNextConfig& config, uint64_t seed, Architecture arch,
                                           bool inference_only, DType precision);

  Parameters& params() { return *params_; }
  const Parameters& params() const { return *params_; }
  DType precision() const { return plan_->dtype; }
  std::shared_ptr<const InferencePlan> plan(std::optional<DType> dtype = std::nullopt) const;
  // After the parameters changed (training): every plan is packed again.
  void repack();

 private:
  std::shared_ptr<Parameters> params_;
  std::shared_ptr<const InferencePlan> plan_;
  mutable std::mutex others_mutex_;
  mutable std::vector<std::shared_ptr<const InferencePlan>> others_;
};

}  // namespace convnext::detail
