// Global Response Normalization (ConvNeXt V2), channels-last. For each image, over its P pixels
// of C channels (x[p][c]):
//
//   G_c = ‖x[:, c]‖₂          N_c = G_c / (mean over c of G + 1e-6)
//   y[p,c] = γ_c·(x[p,c]·N_c) + β_c + x[p,c]  =  x[p,c]·(1 + γ_c·N_c) + β_c
//
// so once an image's sums of squares are known, GRN is a per-(image, channel) scale and a bias.
// The statistics need the whole image, which is why the model runs a V2 block in two passes
// (model/forward.cpp). Kernels take pointers and sizes and know nothing of models; the plain
// twins in reference/ are what the tests compare them with.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"  // Context

namespace convnext::kernels {

constexpr double kGrnEps = 1e-6;  // hard-coded in transformers' ConvNextV2GRN and in timm

// acc[c] += Σ over `rows` rows of x[r,c]², accumulated in double (part of one image's rows).
void grn_sum_squares(const float* x, int64_t rows, int64_t C, double* acc);
// One image's GRN from its sums of squares: scale[c] = 1 + γ_c·N_c, so GRN(x) = x·scale + β.
// nx (may be null) receives N_c.
void grn_scale(const double* sumsq, int64_t C, const float* gamma, float* scale, float* nx);
// y[r,c] = x[r,c]·scale[c] + β[c] over `rows` rows of one image. x and y may alias.
void grn_apply(const float* x, int64_t rows, int64_t C, const float* scale, const float* beta, float* y);

// The same over N whole images of P pixels ([N][P][C]) on ctx's threads, allocating nothing:
// sumsq [N][C] (written) from x, then y = x·scale + β with scale [N][C] (x and y may alias).
void grn_statistics(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, double* sumsq);
void grn_apply_images(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, const float* scale,
                      const float* beta, float* y);

// The layer on N images of P pixels ([N][P][C]) on ctx's threads. x and y may alias.
void grn(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, const float* gamma, const float* beta,
         float* y);
// Its backward from the layer's input x and dy: dx (written; may alias dy), dgamma and dbeta ([C],
// added to; either may be null).
void grn_backward(const Context& ctx, const float* x, const float* dy, int64_t N, int64_t P, int64_t C,
                  const float* gamma, float* dx, float* dgamma, float* dbeta);

namespace reference {
// The definitions above as plain loops in double.
void grn(const float* x, int64_t N, int64_t P, int64_t C, const float* gamma, const float* beta, float* y);
void grn_backward(const float* x, const float* dy, int64_t N, int64_t P, int64_t C, const float* gamma, float* dx,
                  float* dgamma, float* dbeta);
}  // namespace reference

}  // namespace convnext::kernels
