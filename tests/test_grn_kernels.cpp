// GRN (ConvNeXt V2) kernels against their plain double twins on odd shapes (C = 1, 3, 7, 13, 57
// and 300, past one channel block; P = 1, 45 (5×9), 49 pixels; 1 and 3 images; 1 and 3 threads),
// the two-pass form the model runs (statistics of row pieces, then scale and apply) against the
// whole layer, and the reference backward against central finite differences of the forward.
#include <functional>
#include <random>

#include "kernels/grn.h"
#include "test_util.h"

namespace convnext::test {
namespace {

Tensor T(const std::vector<float>& v) { return as_tensor(v); }

struct Shape3 {
  int64_t N, P, C;
};
const Shape3 kShapes[] = {{1, 1, 1}, {1, 1, 7}, {3, 45, 3}, {1, 49, 13}, {3, 45, 57}, {2, 49, 300}, {1, 45, 1}};

kernels::Context ctx_with(int threads) {
  kernels::Context c = kernels::default_context();
  c.threads = threads;
  return c;
}

TEST(GrnKernels, ForwardMatchesReference) {
  for (const Shape3 s : kShapes) {
    const int64_t n = s.N * s.P * s.C;
    // Activations after GELU are mostly positive, with a tail below zero.
    const auto x = randn(n, 1 + s.C, 1.0f, 0.3f), gamma = randn(s.C, 2 + s.P, 0.3f, 0.3f), beta = randn(s.C, 3, 0.1f);
    std::vector<float> want(static_cast<size_t>(n));
    kernels::reference::grn(x.data(), s.N, s.P, s.C, gamma.data(), beta.data(), want.data());
    for (const int threads : {1, 3}) {
      std::vector<float> y(static_cast<size_t>(n));
      kernels::grn(ctx_with(threads), x.data(), s.N, s.P, s.C, gamma.data(), beta.data(), y.data());
      EXPECT_TRUE(close(T(y), T(want), 1e-6)) << s.N << "x" << s.P << "x" << s.C << " on " << threads << " threads";
      std::vector<float> inplace = x;  // x and y may alias
      kernels::grn(ctx_with(threads), inplace.data(), s.N, s.P, s.C, gamma.data(), beta.data(), inplace.data());
      EXPECT_TRUE(close(T(inplace), T(want), 1e-6)) << "in place";
    }
    // The model's two passes: sums of squares over pieces of an image's rows (its tiles), then
    // one scale per image and the apply, piece by piece.
    std::vector<float> y(static_cast<size_t>(n)), scale(static_cast<size_t>(s.C));
    for (int64_t img = 0; img < s.N; ++img) {
      std::vector<double> acc(static_cast<size_t>(s.C), 0.0);
      const float* xi = x.data() + img * s.P * s.C;
      for (int64_t r0 = 0; r0 < s.P; r0 += 4) kernels::grn_sum_squares(xi + r0 * s.C, std::min<int64_t>(4, s.P - r0), s.C, acc.data());
      kernels::grn_scale(acc.data(), s.C, gamma.data(), scale.data(), nullptr);
      for (int64_t r0 = 0; r0 < s.P; r0 += 7)
        kernels::grn_apply(xi + r0 * s.C, std::min<int64_t>(7, s.P - r0), s.C, scale.data(), beta.data(),
                           y.data() + (img * s.P + r0) * s.C);
    }
    EXPECT_TRUE(close(T(y), T(want), 1e-6)) << "two passes " << s.N << "x" << s.P << "x" << s.C;
  }
}

// GRN of an all-zero image is β (G = 0 everywhere: N = 0, no division by zero).
TEST(GrnKernels, ZeroImageGivesBeta) {
  const int64_t P = 5, C = 4;
  std::vector<float> x(P * C, 0.0f), y(P * C), gamma = {0.5f, 1, 2, 3}, beta = {0.1f, -0.2f, 0.3f, 0};
  kernels::grn(kernels::default_context(), x.data(), 1, P, C, gamma.data(), beta.data(), y.data());
  for (int64_t i = 0; i < P * C; ++i) EXPECT_EQ(y[static_cast<size_t>(i)], beta[static_cast<size_t>(i % C)]);
  std::vector<float> dx(P * C), dg(C, 0.0f), db(C, 0.0f);
  const auto dy = randn(P * C, 9);
  kernels::grn_backward(kernels::default_context(), x.data(), dy.data(), 1, P, C, gamma.data(), dx.data(), dg.data(), db.data());
  for (float v : dx) EXPECT_TRUE(std::isfinite(v));
}

TEST(GrnKernels, BackwardMatchesReference) {
  for (const Shape3 s : kShapes) {
    const int64_t n = s.N * s.P * s.C;
    const auto x = randn(n, 10 + s.C, 1.0f, 0.3f), dy = randn(n, 11 + s.P), gamma = randn(s.C, 12, 0.3f, 0.3f);
    std::vector<float> rdx(static_cast<size_t>(n)), rdg(static_cast<size_t>(s.C), 0.25f), rdb(static_cast<size_t>(s.C), 0.25f);
    kernels::reference::grn_backward(x.data(), dy.data(), s.N, s.P, s.C, gamma.data(), rdx.data(), rdg.data(), rdb.data());
    for (const int threads : {1, 3}) {
      std::vector<float> dx(static_cast<size_t>(n)), dg(static_cast<size_t>(s.C), 0.25f), db(static_cast<size_t>(s.C), 0.25f);
      kernels::grn_backward(ctx_with(threads), x.data(), dy.data(), s.N, s.P, s.C, gamma.data(), dx.data(), dg.data(), db.data());
      const std::string what = std::to_string(s.N) + "x" + std::to_string(s.P) + "x" + std::to_string(s.C);
      EXPECT_TRUE(close(T(dx), T(rdx), 1e-5)) << "dx " << what;
      EXPECT_TRUE(close(T(dg), T(rdg), 1e-5)) << "dgamma " << what;
      EXPECT_TRUE(close(T(db), T(rdb), 1e-5)) << "dbeta " << what;
      std::vector<float> alias = dy;  // dx may alias dy
      kernels::grn_backward(ctx_with(threads), x.data(), alias.data(), s.N, s.P, s.C, gamma.data(), alias.data(), nullptr, nullptr);
      EXPECT_TRUE(close(T(alias), T(rdx), 1e-5)) << "dx in place " << what;
    }
  }
}

// d/dθ of Σ w·GRN(x) by central differences of the reference forward.
TEST(GrnKernels, ReferenceBackwardMatchesFiniteDifferences) {
  const int64_t N = 2, P = 6, C = 5;
  auto x = randn(N * P * C, 20, 1.0f, 0.3f), gamma = randn(C, 21, 0.4f, 0.3f), beta = randn(C, 22, 0.1f);
  const auto w = randn(N * P * C, 23);
  auto loss = [&] {
    std::vector<float> y(x.size());
    kernels::reference::grn(x.data(), N, P, C, gamma.data(), beta.data(), y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(w[i]) * y[i];
    return s;
  };
  std::vector<float> dx(x.size()), dg(static_cast<size_t>(C), 0.0f), db(static_cast<size_t>(C), 0.0f);
  kernels::reference::grn_backward(x.data(), w.data(), N, P, C, gamma.data(), dx.data(), dg.data(), db.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(dx[i], numeric(loss, x[i]), 2e-3) << "x " << i;
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(dg[static_cast<size_t>(c)], numeric(loss, gamma[static_cast<size_t>(c)]), 2e-3) << "gamma " << c;
    EXPECT_NEAR(db[static_cast<size_t>(c)], numeric(loss, beta[static_cast<size_t>(c)]), 2e-3) << "beta " << c;
  }
}

}  // namespace
}  // namespace convnext::test
