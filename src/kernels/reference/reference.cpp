// The reference kernels: the plainest loops that compute the definition, in double precision.
// They are slow on purpose and exist to be read and to check the fast kernels against.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace convnext::kernels::reference {

double activation(Activation act, double x) {
  constexpr double kPi = 3.14159265358979323846;
  switch (act) {
    case Activation::Gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::GeluTanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (x + 0.044715 * x * x * x)));
    case Activation::GeluFast: return 0.5 * x * (1.0 + std::tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)));
    case Activation::QuickGelu: return x / (1.0 + std::exp(-1.702 * x));
    case Activation::Gelu10: return std::clamp(0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))), -10.0, 10.0);
    case Activation::Relu: return x > 0 ? x : 0.0;
    case Activation::Relu6: return std::clamp(x, 0.0, 6.0);
    case Activation::Relu2: return x > 0 ? x * x : 0.0;
    case Activation::LeakyRelu: return x >= 0 ? x : 0.01 * x;
    case Activation::Silu: return x / (1.0 + std::exp(-x));
    case Activation::Selu: {
      constexpr double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
      return scale * (x > 0 ? x : alpha * (std::exp(x) - 1.0));
    }
    case Activation::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case Activation::Tanh: return std::tanh(x);
    case Activation::Mish: return x * std::tanh(std::log1p(std::exp(x)));
    case Activation::Linear: return x;
  }
  return x;
}

// C[m,n] = act(Σ_k A[m,k]·W[n,k] + b[n])  (+ C[m,n] when accumulating)
void linear(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, const float* bias, float* C,
            int64_t ldc, bool accumulate, Activation act) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[m * lda + k]) * W[n * K + k];
      s = activation(act, s);
      C[m * ldc + n] = static_cast<float>(accumulate ? C[m * ldc + n] + s : s);
    }
}

// int8: written from the definitions in kernels.h (pack_linear_int8, QuantRow), apart from the
// packer and the fast kernels, in the same float operations so that it quantizes to the same
// integers; the int32 sums are exact, so only the activation (double here) may differ.
void linear_int8(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, const float* bias, float* C,
                 int64_t ldc, bool accumulate, Activation act) {
  std::vector<int32_t> wq(static_cast<size_t>(N * K), 0), colsum(static_cast<size_t>(N), 0);
  std::vector<float> wscale(static_cast<size_t>(N), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    float maxabs = 0.0f;
    for (int64_t k = 0; k < K; ++k) maxabs = std::max(maxabs, std::fabs(W[n * K + k]));
    if (maxabs == 0.0f) continue;
    const float inv = 127.0f / maxabs;
    for (int64_t k = 0; k < K; ++k) {
      int32_t q = static_cast<int32_t>(std::nearbyint(W[n * K + k] * inv));
      q = std::clamp(q, -127, 127);
      wq[static_cast<size_t>(n * K + k)] = q;
      colsum[static_cast<size_t>(n)] += q;
    }
    wscale[static_cast<size_t>(n)] = maxabs / 127.0f;
  }
  std::vector<int32_t> aq(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      lo = std::min(lo, a[k]);
      hi = std::max(hi, a[k]);
    }
    float scale = 0.0f, inv = 0.0f;
    int32_t zero = 0;
    if (hi > lo) {
      scale = (hi - lo) / 255.0f;
      inv = 255.0f / (hi - lo);
      zero = std::clamp(static_cast<int32_t>(std::nearbyint(-lo * inv)), 0, 255);
    }
    for (int64_t k = 0; k < K; ++k)
      aq[static_cast<size_t>(k)] = std::clamp(static_cast<int32_t>(std::nearbyint(a[k] * inv)) + zero, 0, 255);
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<int64_t>(aq[static_cast<size_t>(k)]) * wq[static_cast<size_t>(n * K + k)];
      acc -= static_cast<int64_t>(zero) * colsum[static_cast<size_t>(n)];
      const float pre = std::fma(static_cast<float>(acc), scale * wscale[static_cast<size_t>(n)], bias ? bias[n] : 0.0f);
      const double v = activation(act, pre);
      C[m * ldc + n] = static_cast<float>(accumulate ? C[m * ldc + n] + v : v);
    }
  }
}

// y = (x − mean) / sqrt(var + eps) · gamma + beta, over each row of C values.
RowStats row_stats(const float* x, int64_t C, float eps) {
  double mean = 0, var = 0;
  for (int64_t c = 0; c < C; ++c) mean += x[c];
  mean /= static_cast<double>(C);
  for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean);
  var /= static_cast<double>(C);
  return {mean, 1.0 / std::sqrt(var + static_cast<double>(eps))};
}

void layer_norm(const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const auto [mean, rstd] = row_stats(xr, C, eps);
    for (int64_t c = 0; c < C; ++c)
      y[r * C + c] = static_cast<float>((xr[c] - mean) * rstd * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f));
  }
}

// y[n,i,j,c] = b[c] + Σ_{ky,kx} x[n, i+ky−k/2, j+kx−k/2, c] · w[c,0,ky,kx]   (zero outside the image)
void dwconv(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w, int64_t k, const float* bias,
            float* y) {
  const int64_t pad = k / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j)
        for (int64_t c = 0; c < C; ++c) {
          double s = bias ? bias[c] : 0.0;
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) {
              const int64_t yy = i + ky - pad, xx = j + kx - pad;
              if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
              s += static_cast<double>(x[((n * H + yy) * W + xx) * C + c]) * w[(c * k + ky) * k + kx];
            }
          y[((n * H + i) * W + j) * C + c] = static_cast<float>(s);
        }
}

// y[n,o,i,j] = b[o] + Σ_{c,ky,kx} x[n, c, p·i+ky, p·j+kx] · w[o,c,ky,kx]
void patch_conv_nchw(const float* x, int64_t N, int64_t C, int64_t H, int64_t W, const float* w, const float* b,
                     int64_t O, int64_t p, float* y) {
  const int64_t Ho = H / p, Wo = W / p;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double s = b ? b[o] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t ky = 0; ky < p; ++ky)
              for (int64_t kx = 0; kx < p; ++kx)
                s += static_cast<double>(x[((n * C + c) * H + p * i + ky) * W + p * j + kx]) *
                     w[((o * C + c) * p + ky) * p + kx];
          y[((n * O + o) * Ho + i) * Wo + j] = static_cast<float>(s);
        }
}

}  // namespace convnext::kernels::reference
