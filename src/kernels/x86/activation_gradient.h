// The x86 fp32 and bf16 GEMMs that also write their activation's derivative (ActivationGradient),
// entry points of the x86 family only: the dispatcher (kernels::linear) gives every other GEMM,
// and every other activation, the same values through a tile epilogue.
#pragma once
#include <cstdint>

#include "kernels/kernels.h"

namespace convnext::kernels::x86 {

// True for the activations whose value and derivative these GEMMs compute in registers.
bool act_and_grad_in_registers(Activation act);

void linear(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, Activation act,
            const TileEpilogue* after, const ActivationGradient& grad);
void linear_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, Activation act,
                 const TileEpilogue* after, const ActivationGradient& grad);

}  // namespace convnext::kernels::x86
