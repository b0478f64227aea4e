// Chooses the kernel family once: AVX-512 when the CPU has it (unless CONVNEXT_KERNELS=portable).
#include <omp.h>

#include <cstring>

#include "core/cpu.h"
#include "kernels/kernels.h"

namespace convnext::kernels {

namespace {
bool use_x86() {
  static const bool v = cpu_has_avx512() && std::strcmp(forced_kernels(), "portable") != 0;
  return v;
}
}  // namespace

const char* active_family() { return use_x86() ? "avx512" : "portable"; }

bool native_bf16() {
  static const bool v = cpu_has_avx512_bf16() && std::strcmp(forced_kernels(), "portable") != 0;
  return v;
}

void linear(int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act) {
  if (W.is_bf16()) {
    if (native_bf16()) x86::linear_bf16(M, A, lda, W, C, ldc, accumulate, act);
    else portable::linear_bf16(M, A, lda, W, C, ldc, accumulate, act);
    return;
  }
  if (use_x86()) x86::linear(M, A, lda, W, C, ldc, accumulate, act);
  else portable::linear(M, A, lda, W, C, ldc, accumulate, act);
}

void layer_norm(const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y) {
  if (use_x86()) x86::layer_norm(x, rows, C, gamma, beta, eps, y);
  else portable::layer_norm(x, rows, C, gamma, beta, eps, y);
}

void dwconv7(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y) {
  if (use_x86()) x86::dwconv7(x, N, H, W, C, w49, bias, y);
  else portable::dwconv7(x, N, H, W, C, w49, bias, y);
}

void dwconv7_ln(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y) {
  if (use_x86()) x86::dwconv7_ln(x, N, H, W, C, w49, bias, eps, y);
  else portable::dwconv7_ln(x, N, H, W, C, w49, bias, eps, y);
}

void activation(Activation act, float* x, int64_t n) {
  if (act == Activation::Linear) return;
  if (!use_x86()) return portable::activation(act, x, n);
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) x86::activation(act, x + c * kChunk, std::min(kChunk, n - c * kChunk));
}

}  // namespace convnext::kernels
