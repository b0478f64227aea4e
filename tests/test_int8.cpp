// The int8 GEMM (kernels.h: pack_linear_int8, QuantRow): every family against the plain twin
// (reference::linear_int8) on odd shapes and awkward rows, and against the fp32 product within
// the error that the quantization itself allows.
#include <cmath>
#include <random>

#include "core/cpu.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace convnext::test {
namespace {


struct Family {
  const char* name;
  kernels::Context ctx;
};
// Portable always; the VNNI kernel where the CPU has it (3 threads: an odd split).
std::vector<Family> families() {
  std::vector<Family> f = {{"portable", {3, kernels::Family::Portable}}};
  if (kernels::native_int8({3, kernels::Family::Avx512})) f.push_back({"avx512_vnni", {3, kernels::Family::Avx512}});
  return f;
}

// Rows that stress the quantizer: all zero, all positive (zero point 0), all negative (zero
// point 255), one outlier, a constant row.
void awkward_rows(std::vector<float>& A, int64_t M, int64_t lda, int64_t K) {
  for (int64_t k = 0; k < K; ++k) {
    if (M > 0) A[static_cast<size_t>(0 * lda + k)] = 0.0f;
    if (M > 1) A[static_cast<size_t>(1 * lda + k)] = std::fabs(A[static_cast<size_t>(1 * lda + k)]);
    if (M > 2) A[static_cast<size_t>(2 * lda + k)] = -std::fabs(A[static_cast<size_t>(2 * lda + k)]) - 0.5f;
    if (M > 4) A[static_cast<size_t>(4 * lda + k)] = 0.75f;
  }
  if (M > 3) A[static_cast<size_t>(3 * lda + K / 2)] = 40.0f;
}

const std::vector<std::array<int64_t, 3>> kShapes = {{1, 1, 1},     {1, 3, 13},    {3, 13, 57},   {5, 57, 3},
                                                     {13, 33, 96},  {45, 100, 13}, {57, 61, 777}, {100, 96, 384},
                                                     {130, 70, 1535}};

TEST(Int8, LinearMatchesTheTwinOnOddShapes) {
  // The int32 sums are exact in every family and the float steps are the same operations, so the
  // only differences left are the activation's (vectorised erf against double) and last bits.
  for (const Family& fam : families())
    for (auto [M, N, K] : kShapes)
      for (int mode = 0; mode < 3; ++mode) {  // plain, gelu epilogue, accumulate
        const Activation act = mode == 1 ? Activation::Gelu : Activation::Linear;
        const bool acc = mode == 2;
        const int64_t lda = K + 3, ldc = N + 5;
        auto A = randn(M * lda, 41), W = randn(N * K, 42, 1.0f / std::sqrt(static_cast<float>(K))), b = randn(N, 43);
        awkward_rows(A, M, lda, K);
        auto C0 = randn(M * ldc, 44);
        std::vector<float> ours = C0, ref = C0;
        const auto P = kernels::pack_linear_int8(kernels::default_context(), W.data(), nullptr, nullptr, b.data(), N, K);
        kernels::linear(fam.ctx, M, A.data(), lda, P, ours.data(), ldc, acc, act);
        kernels::reference::linear_int8(M, N, K, A.data(), lda, W.data(), b.data(), ref.data(), ldc, acc, act);
        EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 1e-6))
            << fam.name << " M=" << M << " N=" << N << " K=" << K << " mode " << mode;
      }
}

TEST(Int8, FoldedScalesQuantizeTheFoldedWeight) {
  // pack_linear_int8 with a row scale (a layer scale) and a column scale (a LayerNorm's γ) is the
  // int8 GEMM of W'[n][k] = row[n]·W[n][k]·col[k]: each output channel's scale follows its row.
  const int64_t M = 29, N = 45, K = 70;
  auto A = randn(M * K, 51), W = randn(N * K, 52, 0.1f), b = randn(N, 53), row = randn(N, 54), col = randn(K, 55);
  std::vector<float> folded(W.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) folded[static_cast<size_t>(n * K + k)] = row[n] * W[n * K + k] * col[k];
  for (const Family& fam : families()) {
    std::vector<float> ours(static_cast<size_t>(M * N)), ref(ours.size());
    const auto P = kernels::pack_linear_int8(kernels::default_context(), W.data(), row.data(), col.data(), b.data(), N, K);
    kernels::linear(fam.ctx, M, A.data(), K, P, ours.data(), N, false, Activation::Linear);
    kernels::reference::linear_int8(M, N, K, A.data(), K, folded.data(), b.data(), ref.data(), N, false, Activation::Linear);
    EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 1e-6)) << fam.name;
  }
}

TEST(Int8, ErrorAgainstFp32IsWithinTheQuantizationBound) {
  // With a ≈ â (|a − â| ≤ s_a/2) and w ≈ ŵ (|w − ŵ| ≤ s_w/2): |a·w − â·ŵ| ≤ Σ_k s_a/2·|w_k| +
  // (|a_k| + s_a/2)·s_w/2. Every output must be within that bound (plus fp32 rounding) of the
  // exact product; a wrong zero point, scale or packing breaks it by far.
  const int64_t M = 37, N = 67, K = 301;
  auto A = randn(M * K, 61), W = randn(N * K, 62, 0.05f), b = randn(N, 63);
  for (float& v : A) v = v > 0 ? v * 3.0f : v * 0.2f;  // skewed, like a GELU's output
  std::vector<float> exact(static_cast<size_t>(M * N));
  kernels::reference::linear(M, N, K, A.data(), K, W.data(), b.data(), exact.data(), N, false, Activation::Linear);
  for (const Family& fam : families()) {
    std::vector<float> ours(exact.size());
    const auto P = kernels::pack_linear_int8(kernels::default_context(), W.data(), nullptr, nullptr, b.data(), N, K);
    kernels::linear(fam.ctx, M, A.data(), K, P, ours.data(), N, false, Activation::Linear);
    int64_t tight = 0;
    for (int64_t m = 0; m < M; ++m) {
      float lo = 0, hi = 0;
      for (int64_t k = 0; k < K; ++k) lo = std::min(lo, A[m * K + k]), hi = std::max(hi, A[m * K + k]);
      const double sa = (hi - lo) / 255.0;
      for (int64_t n = 0; n < N; ++n) {
        double wmax = 0;
        for (int64_t k = 0; k < K; ++k) wmax = std::max(wmax, std::fabs(static_cast<double>(W[n * K + k])));
        const double sw = wmax / 127.0;
        double bound = 1e-5 * (1.0 + std::fabs(exact[m * N + n]));
        for (int64_t k = 0; k < K; ++k) bound += sa / 2 * std::fabs(W[n * K + k]) + (std::fabs(A[m * K + k]) + sa / 2) * sw / 2;
        const double err = std::fabs(static_cast<double>(ours[m * N + n]) - exact[m * N + n]);
        ASSERT_LE(err, bound) << fam.name << " m=" << m << " n=" << n;
        if (err < 0.25 * bound) ++tight;
      }
    }
    // Rounding errors mostly cancel: the typical error is far below the worst case.
    EXPECT_GT(tight, M * N * 9 / 10) << fam.name;
  }
}

TEST(Int8, QuantParamsKeepZeroExact) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-1.0f, 3.0f}, {0.5f, 2.0f}, {-4.0f, -1.0f}, {-0.17f, 9.5f}}) {
    const kernels::QuantRow q = kernels::quant_params(lo, hi);
    const float l = std::min(lo, 0.0f), h = std::max(hi, 0.0f);
    EXPECT_FLOAT_EQ(q.scale, (h - l) / 255.0f);
    EXPECT_GE(q.zero, 0);
    EXPECT_LE(q.zero, 255);
    EXPECT_NEAR(q.scale * (0 - q.zero), l, q.scale);     // the range's low end is level 0
    EXPECT_NEAR(q.scale * (255 - q.zero), h, q.scale);   // and its high end level 255
  }
  const kernels::QuantRow z = kernels::quant_params(0.0f, 0.0f);
  EXPECT_EQ(z.scale, 0.0f);
  EXPECT_EQ(z.zero, 0);
}

}  // namespace
}  // namespace convnext::test
