// The layers inference and training share (see layers.h).
#include "model/layers.h"

namespace convnext::detail {

void layer_norm(const kernels::Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma,
                const float* beta, float eps, float* y, const LayerNormSaved* saved) {
  if (saved) kernels::layer_norm_train(ctx, x, rows, C, gamma, beta, eps, y, saved->xhat, saved->rstd);
  else kernels::layer_norm(ctx, x, rows, C, gamma, beta, eps, y);
}

void embeddings(const kernels::Context& ctx, const float* px, int64_t N, int64_t Cin, int64_t H, int64_t W, int64_t p,
                const kernels::PackedLinear& conv, const float* gamma, const float* beta, float* patches, float* y,
                const LayerNormSaved* saved) {
  const int64_t M = N * (H / p) * (W / p), C0 = conv.N;
  kernels::patchify_nchw(ctx, px, N, Cin, H, W, p, patches);
  kernels::linear(ctx, M, patches, p * p * Cin, conv, y, C0, /*accumulate=*/false, Activation::Linear);
  layer_norm(ctx, y, M, C0, gamma, beta, kBlockEps, y, saved);
}

void downsample(const kernels::Context& ctx, const float* x, const MapShape& in, const float* gamma, const float* beta,
                const kernels::PackedLinear& conv, float* t, float* patches, float* y, const LayerNormSaved* saved) {
  layer_norm(ctx, x, in.pixels(), in.C, gamma, beta, kBlockEps, t, saved);
  kernels::patchify_nhwc(ctx, t, in.N, in.H, in.W, in.C, 2, patches);
  const int64_t M = in.N * (in.H / 2) * (in.W / 2);
  kernels::linear(ctx, M, patches, 4 * in.C, conv, y, conv.N, /*accumulate=*/false, Activation::Linear);
}

void classifier_head(const kernels::Context& ctx, const float* pooled, int64_t N, int64_t C, const float* gamma,
                     const float* beta, float eps, const kernels::PackedLinear* classifier, float* normed,
                     float* logits, const LayerNormSaved* saved) {
  layer_norm(ctx, pooled, N, C, gamma, beta, eps, normed, saved);
  if (classifier && classifier->N > 0)
    kernels::linear(ctx, N, normed, C, *classifier, logits, classifier->N, /*accumulate=*/false, Activation::Linear);
}

}  // namespace convnext::detail
