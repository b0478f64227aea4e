// The AVX-512 weight gradients that exist in the x86 family only: dW[N][K] += Σ_m dy[m][n]·x[m][k]
// with the pixel sum in fixed groups (the driver, wgrad::run, is in gemm_common.h). The dispatcher
// (kernels::weight_gradient) runs them where they pay and packs x whole for linear_at elsewhere.
#pragma once
#include <cstdint>

namespace convnext::kernels::x86 {

constexpr int64_t kWeightGradientGroup = 1024;  // pixels per group of the sum

// The grouped kernels pay from 4 groups on (ConvNeXt-T batch 8: stages 1 and 2, 1.4–1.7× and
// 1.15×); on fewer pixels, packing x whole for linear_at is as fast or faster.
inline bool grouped_weight_gradient_pays(int64_t M) { return M >= 4 * kWeightGradientGroup; }

void weight_gradient(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx, int64_t K,
                     float* dW);
// The same on dy and x rounded to bf16 (AVX512_BF16), products summed in fp32.
void weight_gradient_bf16(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                          int64_t K, float* dW);

}  // namespace convnext::kernels::x86
