// GRN kernels (grn.h): statistics in double, then a per-(image, channel) scale and a bias. Plain
// C++ loops over contiguous channels, which the compiler vectorises; GRN reads and writes each
// value once or twice, next to the two GEMMs of the block that do C times as much per value.
#include "kernels/grn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace convnext::kernels {

namespace {

constexpr int64_t kChannelBlock = 256;  // channels per chunk of the threaded statistics

// acc[c] += Σ_r x[r·ld + c]² for c < w.
void sum_squares(const float* x, int64_t rows, int64_t w, int64_t ld, double* acc) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    for (int64_t c = 0; c < w; ++c) acc[c] += static_cast<double>(xr[c]) * xr[c];
  }
}

// Calls body(n, c0, w) for every image n and block of w channels starting at c0, on the threads.
template <class F>
void per_image_channel_block(const Context& ctx, int64_t N, int64_t P, int64_t C, F&& body) {
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  parallel::for_each(N * blocks, ctx.threads, N * P * C > 32768, [&](int64_t i) {
    const int64_t n = i / blocks, c0 = (i % blocks) * kChannelBlock;
    body(n, c0, std::min(kChannelBlock, C - c0));
  });
}

}  // namespace

void grn_sum_squares(const float* x, int64_t rows, int64_t C, double* acc) { sum_squares(x, rows, C, C, acc); }

void grn_scale(const double* sumsq, int64_t C, const float* gamma, float* scale, float* nx) {
  double mean = 0;
  for (int64_t c = 0; c < C; ++c) mean += std::sqrt(sumsq[c]);
  mean /= static_cast<double>(C);
  const double inv = 1.0 / (mean + kGrnEps);
  for (int64_t c = 0; c < C; ++c) {
    const double n = std::sqrt(sumsq[c]) * inv;
    scale[c] = static_cast<float>(1.0 + gamma[c] * n);
    if (nx) nx[c] = static_cast<float>(n);
  }
}

void grn_apply(const float* x, int64_t rows, int64_t C, const float* scale, const float* beta, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * scale[c] + beta[c];
  }
}

void grn_statistics(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, double* sumsq) {
  std::fill(sumsq, sumsq + N * C, 0.0);
  per_image_channel_block(ctx, N, P, C, [&](int64_t n, int64_t c0, int64_t w) {
    sum_squares(x + n * P * C + c0, P, w, C, sumsq + n * C + c0);
  });
}

void grn_apply_images(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, const float* scale,
                      const float* beta, float* y) {
  parallel::for_each(N * P, ctx.threads, N * P * C > 32768, [&](int64_t r) {
    grn_apply(x + r * C, 1, C, scale + (r / P) * C, beta, y + r * C);
  });
}

void grn(const Context& ctx, const float* x, int64_t N, int64_t P, int64_t C, const float* gamma, const float* beta,
         float* y) {
  std::vector<double> sumsq(static_cast<size_t>(N * C));
  grn_statistics(ctx, x, N, P, C, sumsq.data());
  std::vector<float> scale(static_cast<size_t>(N * C));
  for (int64_t n = 0; n < N; ++n) grn_scale(sumsq.data() + n * C, C, gamma, scale.data() + n * C, nullptr);
  grn_apply_images(ctx, x, N, P, C, scale.data(), beta, y);
}

// With S_c = Σ_p x², G_c = √S_c, D = mean(G) + ε, N_c = G_c / D and y = x·(1 + γN) + β:
//   dβ_c = Σ_p dy,   dγ_c = N_c·Σ_p dy·x,   ∂L/∂N_c = A_c = γ_c·Σ_p dy·x,
//   ∂L/∂G_k = A_k / D − Σ_c A_c·G_c / (C·D²)     (N_c = G_c/D, ∂D/∂G_k = 1/C),
//   dx[p,k] = dy[p,k]·(1 + γ_k N_k) + ∂L/∂G_k · x[p,k] / G_k   (0 where G_k = 0, as torch's norm).
void grn_backward(const Context& ctx, const float* x, const float* dy, int64_t N, int64_t P, int64_t C,
                  const float* gamma, float* dx, float* dgamma, float* dbeta) {
  const size_t NC = static_cast<size_t>(N * C);
  std::vector<double> S(NC, 0.0), sxy(NC, 0.0), sy(NC, 0.0);
  per_image_channel_block(ctx, N, P, C, [&](int64_t n, int64_t c0, int64_t w) {
    double* s = S.data() + n * C + c0;
    double* a = sxy.data() + n * C + c0;
    double* b = sy.data() + n * C + c0;
    for (int64_t p = 0; p < P; ++p) {
      const float* xr = x + (n * P + p) * C + c0;
      const float* gr = dy + (n * P + p) * C + c0;
      for (int64_t c = 0; c < w; ++c) {
        s[c] += static_cast<double>(xr[c]) * xr[c];
        a[c] += static_cast<double>(gr[c]) * xr[c];
        b[c] += gr[c];
      }
    }
  });
  // dx = dy·ka + x·kb per (image, channel).
  std::vector<float> ka(NC), kb(NC);
  std::vector<double> dg(static_cast<size_t>(C), 0.0), db(static_cast<size_t>(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const double* s = S.data() + n * C;
    const double* a = sxy.data() + n * C;
    double mean = 0, t = 0;
    for (int64_t c = 0; c < C; ++c) mean += std::sqrt(s[c]);
    const double D = mean / static_cast<double>(C) + kGrnEps;
    for (int64_t c = 0; c < C; ++c) t += gamma[c] * a[c] * std::sqrt(s[c]);
    for (int64_t c = 0; c < C; ++c) {
      const double g = std::sqrt(s[c]), nc = g / D;
      dg[static_cast<size_t>(c)] += nc * a[c];
      db[static_cast<size_t>(c)] += sy[static_cast<size_t>(n * C + c)];
      const double dG = gamma[c] * a[c] / D - t / (static_cast<double>(C) * D * D);
      ka[static_cast<size_t>(n * C + c)] = static_cast<float>(1.0 + gamma[c] * nc);
      kb[static_cast<size_t>(n * C + c)] = g > 0 ? static_cast<float>(dG / g) : 0.0f;
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] += static_cast<float>(dg[static_cast<size_t>(c)]);
    if (dbeta) dbeta[c] += static_cast<float>(db[static_cast<size_t>(c)]);
  }
  parallel::for_each(N * P, ctx.threads, N * P * C > 32768, [&](int64_t r) {
    const float* xr = x + r * C;
    const float* gr = dy + r * C;
    const float* a = ka.data() + (r / P) * C;
    const float* b = kb.data() + (r / P) * C;
    float* out = dx + r * C;
    for (int64_t c = 0; c < C; ++c) out[c] = gr[c] * a[c] + xr[c] * b[c];
  });
}

}  // namespace convnext::kernels
