// Portable kernels: plain C++ that the compiler vectorises for whatever the target is. Used
// when the CPU has no AVX-512, and tested against reference/ like the x86 kernels.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "io/safetensors.h"  // bf16 conversions
#include "kernels/kernels.h"

namespace convnext::kernels::portable {

float activation_scalar(Activation act, float x) {
  switch (act) {
    case Activation::Gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f));
    case Activation::GeluTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    case Activation::GeluFast: return 0.5f * x * (1.0f + std::tanh(x * 0.7978845608f * (1.0f + 0.044715f * x * x)));
    case Activation::QuickGelu: return x / (1.0f + std::exp(-1.702f * x));
    case Activation::Gelu10: return std::clamp(0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f)), -10.0f, 10.0f);
    case Activation::Relu: return x > 0 ? x : 0.0f;
    case Activation::Relu6: return x > 0 ? (x < 6.0f ? x : 6.0f) : 0.0f;
    case Activation::Relu2: return x > 0 ? x * x : 0.0f;
    case Activation::LeakyRelu: return x >= 0 ? x : 0.01f * x;
    case Activation::Silu: return x / (1.0f + std::exp(-x));
    case Activation::Selu:
      return 1.0507009873554804934f * (x > 0 ? x : 1.6732632423543772848f * std::expm1(x));
    case Activation::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Activation::Tanh: return std::tanh(x);
    case Activation::Mish: return x * std::tanh(std::log1p(std::exp(x)));
    case Activation::Linear: return x;
  }
  return x;
}

void activation(int threads, Activation act, float* x, int64_t n) {
  if (act == Activation::Linear) return;
  parallel::for_each(n, threads, n > 65536, [&](int64_t i) {
    x[i] = activation_scalar(act, x[i]);
  });
}

namespace {

// One MR×32 tile over K: C[0..MR) x [0..nc) (+)= A·Bpanel.
template <int MR>
void tile(int64_t K, const float* A, int64_t lda, const float* Bp, const float* bias, float* C, int64_t ldc, int64_t nc,
          bool load_c) {
  float acc[MR][kPanel];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kPanel; ++j) acc[i][j] = (load_c && j < nc) ? C[i * ldc + j] : 0.0f;
  for (int64_t k = 0; k < K; ++k) {
    const float* b = Bp + k * kPanel;
    for (int i = 0; i < MR; ++i) {
      const float a = A[i * lda + k];
      for (int j = 0; j < kPanel; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < nc; ++j) C[i * ldc + j] = acc[i][j] + (bias ? bias[j] : 0.0f);
}

}  // namespace

void linear(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act, const TileEpilogue*) {
  const int64_t N = W.N, K = W.K, panels = (N + kPanel - 1) / kPanel;
  constexpr int64_t MR = 4;
  const int64_t mtiles = (M + MR - 1) / MR;
  parallel::for_each(panels * mtiles, threads, true, [&](int64_t pt) {
    const int64_t p = pt / mtiles, t = pt % mtiles;
    const int64_t m0 = t * MR, mr = std::min(MR, M - m0), n0 = p * kPanel, nc = std::min(kPanel, N - n0);
    const float* Bp = W.panels.data() + p * K * kPanel;
    const float* b = W.bias.data() + n0;
    const float* Ap = A + m0 * lda;
    float* Cp = C + m0 * ldc + n0;
    switch (mr) {
      case 4: tile<4>(K, Ap, lda, Bp, b, Cp, ldc, nc, accumulate); break;
      case 3: tile<3>(K, Ap, lda, Bp, b, Cp, ldc, nc, accumulate); break;
      case 2: tile<2>(K, Ap, lda, Bp, b, Cp, ldc, nc, accumulate); break;
      default: tile<1>(K, Ap, lda, Bp, b, Cp, ldc, nc, accumulate); break;
    }
    if (act != Activation::Linear)
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t j = 0; j < nc; ++j) Cp[i * ldc + j] = activation_scalar(act, Cp[i * ldc + j]);
  });
}

void layer_norm(int threads, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y) {
  parallel::for_each(rows, threads, rows * C > 16384, [&](int64_t r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += xr[c];
    const float mean = static_cast<float>(s / static_cast<double>(C));
    double v = 0;
    for (int64_t c = 0; c < C; ++c) v += static_cast<double>(xr[c] - mean) * (xr[c] - mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(C) + eps));
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - mean) * rstd * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
  });
}

namespace {
// Output image row i of image n into out (W·C values).
void dw_row(const float* x, int64_t n, int64_t i, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
            float* out_row, bool accumulate = false) {
  for (int64_t j = 0; j < W; ++j) {
    float* out = out_row + j * C;
    for (int64_t c = 0; c < C; ++c) out[c] = (accumulate ? out[c] : 0.0f) + (bias ? bias[c] : 0.0f);
    for (int64_t ky = 0; ky < 7; ++ky) {
      const int64_t yy = i + ky - 3;
      if (yy < 0 || yy >= H) continue;
      for (int64_t kx = 0; kx < 7; ++kx) {
        const int64_t xx = j + kx - 3;
        if (xx < 0 || xx >= W) continue;
        const float* in = x + ((n * H + yy) * W + xx) * C;
        const float* wk = w49 + (ky * 7 + kx) * C;
        for (int64_t c = 0; c < C; ++c) out[c] += in[c] * wk[c];
      }
    }
  }
}
}  // namespace

void dwconv7(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y,
             bool accumulate) {
  parallel::for_each(N * H, threads, true, [&](int64_t ni) {
    dw_row(x, ni / H, ni % H, H, W, C, w49, bias, y + ni * W * C, accumulate);
  });
}

void dwconv7_ln_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                     float eps, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) dw_row(x, r / H, r % H, H, W, C, w49, bias, y + (r - r0) * W * C);
  layer_norm(1, y, (r1 - r0) * W, C, nullptr, nullptr, eps, y);  // on the calling thread, as the contract says
}

void dwconv7_ln_train_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                           const float* gamma, const float* beta, float eps, int64_t r0, int64_t r1, float* y, float* xhat,
                           float* rstd) {
  for (int64_t r = r0; r < r1; ++r) dw_row(x, r / H, r % H, H, W, C, w49, bias, xhat + (r - r0) * W * C);
  layer_norm_train(1, xhat, (r1 - r0) * W, C, gamma, beta, eps, y, xhat, rstd);  // each value read before it is replaced
}

void dwconv7_ln(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y) {
  dwconv7(threads, x, N, H, W, C, w49, bias, y);
  layer_norm(threads, y, N * H * W, C, nullptr, nullptr, eps, y);
}

}  // namespace convnext::kernels::portable

namespace convnext::kernels::portable {

// The bf16 GEMM's numbers without AVX512_BF16: A rounded to bf16 (nearest even) as the native
// kernel does, the bf16 weights widened, products summed in fp32.
void linear_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act, const TileEpilogue*) {
  const int64_t N = W.N, K = W.K, K2 = (K + 1) / 2;
  parallel::for_each(M, threads, M * N * K > 32768, [&](int64_t m) {
    static thread_local std::vector<float> a;  // kept: a forward allocates only its outputs
    a.assign(static_cast<size_t>(2 * K2), 0.0f);
    for (int64_t k = 0; k < K; ++k) a[static_cast<size_t>(k)] = io::bf16_to_f32(io::f32_to_bf16(A[m * lda + k]));
    for (int64_t n = 0; n < N; ++n) {
      const int64_t p = n / kPanel, j = n % kPanel;
      float acc = 0.0f;
      for (int64_t kk = 0; kk < K2; ++kk) {
        const uint16_t* w = W.panels_bf16.data() + ((p * K2 + kk) * kPanel + j) * 2;
        acc += a[static_cast<size_t>(2 * kk)] * io::bf16_to_f32(w[0]) + a[static_cast<size_t>(2 * kk + 1)] * io::bf16_to_f32(w[1]);
      }
      const float v = activation_scalar(act, acc + W.bias[static_cast<size_t>(n)]);
      C[m * ldc + n] = accumulate ? C[m * ldc + n] + v : v;
    }
  });
}

}  // namespace convnext::kernels::portable

namespace convnext::kernels::portable {

// The int8 GEMM's numbers without AVX512_VNNI: each row of A quantized as the native kernel does
// (kernels::quant_params), exact int32 sums, the same dequantization.
void linear_int8(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act) {
  const int64_t N = W.N, K = W.K, K4 = (K + 3) / 4;
  parallel::for_each(M, threads, M * N * K > 32768, [&](int64_t m) {
    const float* a = A + m * lda;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < K; ++k) lo = std::min(lo, a[k]), hi = std::max(hi, a[k]);
    const QuantRow q = quant_params(lo, hi);
    static thread_local std::vector<int32_t> qa;  // kept: a forward allocates only its outputs
    qa.assign(static_cast<size_t>(K4 * 4), 0);
    for (int64_t k = 0; k < K; ++k)
      qa[static_cast<size_t>(k)] = std::clamp(static_cast<int32_t>(std::nearbyint(a[k] * q.inv)) + q.zero, 0, 255);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t p = n / kPanel, j = n % kPanel;
      int32_t acc = 0;
      for (int64_t kk = 0; kk < K4; ++kk) {
        const int8_t* w = W.panels_s8.data() + ((p * K4 + kk) * kPanel + j) * 4;
        for (int r = 0; r < 4; ++r) acc += qa[static_cast<size_t>(kk * 4 + r)] * w[r];
      }
      const float deq = static_cast<float>(acc - q.zero * W.colsum_s8[static_cast<size_t>(n)]);
      const float v = activation_scalar(
          act, std::fma(deq, q.scale * W.scale_s8[static_cast<size_t>(n)], W.bias[static_cast<size_t>(n)]));
      C[m * ldc + n] = accumulate ? C[m * ldc + n] + v : v;
    }
  });
}

}  // namespace convnext::kernels::portable

namespace convnext::kernels::portable {

// The same probe in plain C++: 12 independent 16-wide multiply-add chains, vectorised by the
// compiler for whatever the target is.
double fp32_peak_gflops(int threads) {
  constexpr int64_t kIters = 2'000'000;
  std::atomic<int> sink{0};
  const auto rounds = [](int64_t iters) {
    float acc[12][16] = {};
    for (int64_t it = 0; it < iters; ++it)
      for (auto& chain : acc)
        for (float& v : chain) v = v * 0.999f + 1e-8f;
    float s = 0;
    for (auto& chain : acc)
      for (float v : chain) s += v;
    return s;
  };
  const auto t0 = std::chrono::steady_clock::now();
  parallel::for_chunks(threads, 1, [&](int64_t, int64_t) { sink += rounds(kIters) == 1.0f; }, threads);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(threads) * static_cast<double>(kIters) * 12 * 32 / s / 1e9 + 0.0 * sink;
}

}  // namespace convnext::kernels::portable
