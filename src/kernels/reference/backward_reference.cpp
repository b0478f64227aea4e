// Reference backward kernels: the derivatives written out from the definitions, in double.
// Tests compare the fast kernels against these, and these against finite differences.
#include <cmath>
#include <vector>

#include "kernels/kernels.h"

namespace convnext::kernels::reference {

double activation_grad(Activation act, double x) {
  constexpr double kPi = 3.14159265358979323846;
  const double phi = std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi), cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  switch (act) {
    case Activation::Gelu: return cdf + x * phi;
    case Activation::Gelu10: {
      const double y = x * cdf;
      return (y < -10.0 || y > 10.0) ? 0.0 : cdf + x * phi;
    }
    case Activation::GeluTanh:
    case Activation::GeluFast: {
      const double k = std::sqrt(2.0 / kPi), t = std::tanh(k * (x + 0.044715 * x * x * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case Activation::QuickGelu: {
      const double s = sigmoid(1.702 * x);
      return s + 1.702 * x * s * (1.0 - s);
    }
    case Activation::Relu: return x > 0 ? 1.0 : 0.0;
    case Activation::Relu6: return (x > 0 && x < 6) ? 1.0 : 0.0;
    case Activation::Relu2: return x > 0 ? 2.0 * x : 0.0;
    case Activation::LeakyRelu: return x > 0 ? 1.0 : 0.01;
    case Activation::Silu: {
      const double s = sigmoid(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case Activation::Selu: {
      constexpr double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
      return scale * (x > 0 ? 1.0 : alpha * std::exp(x));
    }
    case Activation::Sigmoid: {
      const double s = sigmoid(x);
      return s * (1.0 - s);
    }
    case Activation::Tanh: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case Activation::Mish: {
      const double sp = std::log1p(std::exp(x)), t = std::tanh(sp);
      return t + x * (1.0 - t * t) * sigmoid(x);
    }
    case Activation::Linear: return 1.0;
  }
  return 1.0;
}

// With x̂ = (x − μ)/σ, y = γ·x̂ + β:  dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = γ·dy.
void layer_norm_backward(const float* x, const float* dy, int64_t rows, int64_t C, const float* gamma, float eps,
                         float* dx, float* dgamma, float* dbeta) {
  std::vector<double> xh(static_cast<size_t>(C)), g(static_cast<size_t>(C));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    const auto [mean, rstd] = row_stats(xr, C, eps);
    double m1 = 0, m2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      xh[static_cast<size_t>(c)] = (xr[c] - mean) * rstd;
      g[static_cast<size_t>(c)] = static_cast<double>(dyr[c]) * (gamma ? gamma[c] : 1.0f);
      m1 += g[static_cast<size_t>(c)];
      m2 += g[static_cast<size_t>(c)] * xh[static_cast<size_t>(c)];
      if (dgamma) dgamma[c] += static_cast<float>(dyr[c] * xh[static_cast<size_t>(c)]);
      if (dbeta) dbeta[c] += dyr[c];
    }
    m1 /= static_cast<double>(C);
    m2 /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c)
      dx[r * C + c] = static_cast<float>(rstd * (g[static_cast<size_t>(c)] - m1 - xh[static_cast<size_t>(c)] * m2));
  }
}

// y[n,i,j,c] = b[c] + Σ x[n,i+ky−k/2, j+kx−k/2, c]·w[c,ky,kx]: every (output, tap) pair adds
// x·dy to dw and w·dy to dx at the input position it read.
void dwconv_backward(const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, const float* w,
                     int64_t k, float* dx, float* dw, float* dbias) {
  const int64_t pad = k / 2;
  std::vector<double> gx(static_cast<size_t>(N * H * W * C), 0.0), gw(static_cast<size_t>(C * k * k), 0.0),
      gb(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j)
        for (int64_t c = 0; c < C; ++c) {
          const double g = dy[((n * H + i) * W + j) * C + c];
          gb[static_cast<size_t>(c)] += g;
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) {
              const int64_t yy = i + ky - pad, xx = j + kx - pad;
              if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
              const int64_t xi = ((n * H + yy) * W + xx) * C + c, wi = (c * k + ky) * k + kx;
              gw[static_cast<size_t>(wi)] += g * x[xi];
              gx[static_cast<size_t>(xi)] += g * w[wi];
            }
        }
  for (size_t i = 0; i < gx.size(); ++i) dx[i] = static_cast<float>(gx[i]);
  for (size_t i = 0; i < gw.size(); ++i) dw[i] += static_cast<float>(gw[i]);
  if (dbias)
    for (int64_t c = 0; c < C; ++c) dbias[c] += static_cast<float>(gb[static_cast<size_t>(c)]);
}

}  // namespace convnext::kernels::reference
