// The x86 bf16 kernels for maps kept in bfloat16 between GEMMs (bf16 training's act(h) and dh), entry
// points of the x86 family only: the dispatcher (kernels.h, "maps kept in bf16") gives the other
// families the same bits by widening such a map to fp32, which is exact.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace convnext::kernels::x86 {

// linear_bf16 with an ActivationGradient whose C is bf16: act(v) rounded to nearest even (act one
// of act_and_grad_in_registers').
void linear_bf16_out(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad);
// … on A already in bf16 (as linear_bf16 below).
void linear_bf16_out(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad);
// linear_bf16 on A already in bf16: rows lda values apart, K and lda even, A 4-byte aligned.
void linear_bf16(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
                 bool accumulate, Activation act, const TileEpilogue* after);
// weight_gradient_bf16 (weight_gradient.h) on x already in bf16.
void weight_gradient_bf16(int threads, int64_t M, const float* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                          int64_t K, float* dW);

// … and on dy already in bf16.
void weight_gradient_bf16(int threads, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                          int64_t K, float* dW);
// … and on both already in bf16.
void weight_gradient_bf16(int threads, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                          int64_t K, float* dW);
// linear_at_bf16 (family.h) on A already in bf16.
void linear_at_bf16(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                    bool accumulate);
// out[i] = bf16(x[i]) for i < n, rounded to nearest even (AVX512_BF16's conversion).
void round_to_bf16(const float* x, int64_t n, uint16_t* out);
// kernels::multiply_rows_to_bf16 (y is only read here).
void multiply_rows_to_bf16(int64_t rows, int64_t cols, const float* y, int64_t ldy, const float* x, int64_t ldx, uint16_t* out,
                           int64_t ldo, double* sums);
void multiply_rows_to_bf16(int64_t rows, int64_t cols, const float* y, int64_t ldy, const uint16_t* x, int64_t ldx,
                           uint16_t* out, int64_t ldo, double* sums);
// linear_bf16 handing each finished tile to `consume` from a buffer of its thread (kernels::linear_tiles).
void linear_bf16_tiles(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume);
// … on A already in bf16 (as linear_bf16 on a bf16 A).
void linear_bf16_tiles(int threads, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume);

}  // namespace convnext::kernels::x86
