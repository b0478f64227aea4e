// Portable backward-pass kernels (see backward_impl.h) and the activation derivatives.

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "io/safetensors.h"  // f32_to_bf16
#include "kernels/kernels.h"

namespace convnext::kernels::portable {

#include "kernels/backward_impl.h"

// d act(x)/dx in float, with PyTorch's conventions at the kinks (relu'(0) = 0, leaky_relu'(0) =
// 0.01, hardtanh/relu6 and clip pass the gradient on the closed range).
float activation_grad_scalar(Activation act, float x) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f, kInvSqrt2Pi = 0.39894228040143267794f;
  switch (act) {
    case Activation::Gelu:
      return 0.5f * (1.0f + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
    case Activation::Gelu10: {
      const float y = activation_scalar(Activation::Gelu, x);
      if (y < -10.0f || y > 10.0f) return 0.0f;
      return 0.5f * (1.0f + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
    }
    case Activation::GeluTanh:
    case Activation::GeluFast: {
      constexpr float k = 0.79788456080286535588f;
      const float t = std::tanh(k * (x + 0.044715f * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case Activation::QuickGelu: {
      const float s = 1.0f / (1.0f + std::exp(-1.702f * x));
      return s + 1.702f * x * s * (1.0f - s);
    }
    case Activation::Relu: return x > 0 ? 1.0f : 0.0f;
    case Activation::Relu6: return (x > 0 && x < 6.0f) ? 1.0f : 0.0f;
    case Activation::Relu2: return x > 0 ? 2.0f * x : 0.0f;
    case Activation::LeakyRelu: return x > 0 ? 1.0f : 0.01f;
    case Activation::Silu: {
      const float s = 1.0f / (1.0f + std::exp(-x));
      return s * (1.0f + x * (1.0f - s));
    }
    case Activation::Selu:
      return 1.0507009873554804934f * (x > 0 ? 1.0f : 1.6732632423543772848f * std::exp(x));
    case Activation::Sigmoid: {
      const float s = 1.0f / (1.0f + std::exp(-x));
      return s * (1.0f - s);
    }
    case Activation::Tanh: {
      const float t = std::tanh(x);
      return 1.0f - t * t;
    }
    case Activation::Mish: {
      const float sp = std::log1p(std::exp(x)), t = std::tanh(sp), s = 1.0f / (1.0f + std::exp(-x));
      return t + x * (1.0f - t * t) * s;
    }
    case Activation::Linear: return 1.0f;
  }
  return 1.0f;
}

void activation_and_grad(int threads, Activation act, const float* x, float* y, float* d, int64_t n) {
  parallel::for_each(n, threads, n > 65536, [&](int64_t i) {
    const float v = x[i];
    y[i] = activation_scalar(act, v);
    d[i] = activation_grad_scalar(act, v);
  });
}

void activation_and_grad_rows(Activation act, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y, int64_t ldy,
                              float* d, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * ldx + c];
      y[r * ldy + c] = activation_scalar(act, v);
      d[r * ldd + c] = activation_grad_scalar(act, v);
    }
}

void multiply_rows(int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx, double* sums) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = y[r * ldy + c] * x[r * ldx + c];
      y[r * ldy + c] = v;
      if (sums) sums[c] += v;
    }
}

// The reference loop of adamw_update: one parameter at a time (x86's twin does 16 at a time).
void adamw_update(const AdamWScalars& s, float* p, float* g, float* m, float* v, int64_t n, bool zero_g) {
  for (int64_t k = 0; k < n; ++k) {
    const float gk = g[k] * s.grad_scale;
    const float mk = m[k] + s.w1 * (gk - m[k]);  // torch.lerp with weight < 0.5
    const float vk = v[k] * s.b2 + s.w2 * gk * gk;
    const float denom = std::sqrt(vk) / s.bc2_sqrt + s.eps;
    m[k] = mk;
    v[k] = vk;
    p[k] = p[k] * s.keep - s.step_size * (mk / denom);
    if (zero_g) g[k] = 0.0f;
  }
}

void activation_backward(int threads, Activation act, const float* h, const float* dy, float* dx, int64_t n) {
  parallel::for_each(n, threads, n > 65536, [&](int64_t i) {
    dx[i] = dy[i] * activation_grad_scalar(act, h[i]);
  });
}


// C (+)= Aᵀ·B, A stored [K][M]: the plain loop over the packed panels.
void linear_at(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc, bool accumulate) {
  const int64_t N = B.N, K = B.K;
  parallel::for_each(M, threads, M * N * K > 32768, [&](int64_t m) {
    std::vector<float> acc(static_cast<size_t>(N), 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[k * lda + m];
      for (int64_t n = 0; n < N; ++n) acc[static_cast<size_t>(n)] += a * B.panels[static_cast<size_t>(((n / kPanel) * K + k) * kPanel + n % kPanel)];
    }
    for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = (accumulate ? C[m * ldc + n] : 0.0f) + acc[static_cast<size_t>(n)];
  });
}

// The bf16 weight gradient without AVX512_BF16: B's pack (pack_kn's bf16 form) is the layout
// linear_bf16 multiplies by, with zero bias, so Aᵀ copied row-major goes through it: the same
// rounding and the same sums as the native kernel.
void linear_at_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                    bool accumulate) {
  const int64_t K = B.K;
  std::vector<float> at(static_cast<size_t>(M * K));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < M; ++m) at[static_cast<size_t>(m * K + k)] = A[k * lda + m];
  linear_bf16(threads, M, at.data(), K, B, C, ldc, accumulate, Activation::Linear);
}

void bf16_pairs(const float* a, int64_t K, uint32_t* out) {
  for (int64_t k = 0; k < K; k += 2)
    out[k / 2] = static_cast<uint32_t>(io::f32_to_bf16(a[k])) | (k + 1 < K ? static_cast<uint32_t>(io::f32_to_bf16(a[k + 1])) << 16 : 0u);
}

void interleave_bf16(const uint16_t* r0, const uint16_t* r1, int64_t n, uint32_t* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<uint32_t>(r0[j]) | (r1 ? static_cast<uint32_t>(r1[j]) << 16 : 0u);
}

void interleave_bf16(const float* r0, const float* r1, int64_t n, uint32_t* out) {
  for (int64_t j = 0; j < n; ++j)
    out[j] = static_cast<uint32_t>(io::f32_to_bf16(r0[j])) | (r1 ? static_cast<uint32_t>(io::f32_to_bf16(r1[j])) << 16 : 0u);
}

}  // namespace convnext::kernels::portable
