// The layers that inference and training run alike, written once. Each takes the kernels'
// Context from its caller and, in training, a LayerNormSaved that keeps what the backward needs
// (x̂ and 1/σ of every row): with it the LayerNorm is layer_norm_train, without it layer_norm.
//
// The block is the exception. Inference runs it folded (LayerNorm's γ,β inside pwconv1, the
// layer scale inside pwconv2) in cache-sized tiles (model/forward.cpp); training needs each
// unfolded step's output and the gradients of γ, β and the layer scale, so it runs the steps one
// by one and keeps them (train/backprop.cpp). Folding changes the rounding, not the function:
// both match transformers at the fixtures' tolerances.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace convnext::detail {

constexpr float kBlockEps = 1e-6f;  // every LayerNorm but the final one (hard-coded in transformers)

// Where a training LayerNorm keeps x̂ (rows × C) and 1/σ (rows).
struct LayerNormSaved {
  float* xhat;
  float* rstd;
};

// A feature map in NHWC.
struct MapShape {
  int64_t N, H, W, C;
  int64_t pixels() const { return N * H * W; }
};

// y = LayerNorm(x) over rows of C (x and y may alias), keeping x̂ and 1/σ when `saved` is given.
void layer_norm(const kernels::Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma,
                const float* beta, float eps, float* y, const LayerNormSaved* saved);

// ConvNextEmbeddings: y = LayerNorm(conv p×p stride p (pixel_values)), the conv as a GEMM over
// patches gathered straight from NCHW into `patches` (N·H/p·W/p rows of p·p·Cin). y is NHWC.
void embeddings(const kernels::Context& ctx, const float* pixel_values, int64_t N, int64_t Cin, int64_t H, int64_t W,
                int64_t p, const kernels::PackedLinear& conv, const float* gamma, const float* beta, float* patches,
                float* y, const LayerNormSaved* saved);

// The downsampling layer of stages 2…: t = LayerNorm(x), then y = conv 2×2 stride 2 (t) as a GEMM
// over t's 2×2 patches (`patches`: y.pixels() rows of 4·x.C). Training keeps t for the backward.
void downsample(const kernels::Context& ctx, const float* x, const MapShape& in, const float* gamma, const float* beta,
                const kernels::PackedLinear& conv, float* t, float* patches, float* y, const LayerNormSaved* saved);

// The classifier head on pooled features [N, C]: normed = LayerNorm(pooled, eps), then
// logits = normed·Wᵀ + b ([N, classifier.N]) when the model has a classifier.
void classifier_head(const kernels::Context& ctx, const float* pooled, int64_t N, int64_t C, const float* gamma,
                     const float* beta, float eps, const kernels::PackedLinear* classifier, float* normed,
                     float* logits, const LayerNormSaved* saved);

}  // namespace convnext::detail
