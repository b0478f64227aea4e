// The backward kernels of training: the fast ones (AVX-512 and portable) against the reference
// twins on odd shapes (C = 1, 3, 13, 57; H×W = 1×1, 5×9, 57×61; batch 1 and 3), and the
// reference twins against central finite differences of the forward definitions.
#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <functional>
#include <random>

#include "convnext/error.h"
#include "core/cpu.h"
#include "io/safetensors.h"  // f32_to_bf16
#include "kernels/kernels.h"
#include "test_util.h"
#include "train/backprop.h"

namespace convnext::test {
namespace {

Tensor T(const std::vector<float>& v) { return as_tensor(v); }

struct BackwardFamily {
  const char* name;
  // Each takes its thread count first; the tests run 3 threads (an odd split of the rows).
  void (*ln_train)(int, const float*, int64_t, int64_t, const float*, const float*, float, float*, float*, float*);
  void (*ln_back)(int, const float*, const float*, const float*, int64_t, int64_t, const float*, float*, float*, float*);
  void (*dw_grad)(int, const float*, const float*, int64_t, int64_t, int64_t, int64_t, float*, float*);
  void (*act_back)(int, Activation, const float*, const float*, float*, int64_t);
  void (*linear_at)(int, int64_t, const float*, int64_t, const kernels::PackedLinear&, float*, int64_t, bool);
};

constexpr int kThreads = 3;

std::vector<BackwardFamily> families() {
  namespace p = kernels::portable;
  std::vector<BackwardFamily> f = {
      {"portable", p::layer_norm_train, p::layer_norm_backward, p::dwconv7_weight_grad, p::activation_backward, p::linear_at}};
  if (cpu_has_avx512()) {
    namespace x = kernels::x86;
    f.push_back({"avx512", x::layer_norm_train, x::layer_norm_backward, x::dwconv7_weight_grad, x::activation_backward,
                 x::linear_at});
  }
  return f;
}

// A context of kThreads threads for each kernel family this CPU runs.
std::vector<kernels::Context> contexts() {
  std::vector<kernels::Context> c = {{kThreads, kernels::Family::Portable}};
  if (cpu_has_avx512()) c.push_back({kThreads, kernels::Family::Avx512});
  return c;
}

const Activation kActs[] = {Activation::Gelu,      Activation::GeluTanh, Activation::GeluFast, Activation::QuickGelu,
                            Activation::Gelu10,    Activation::Relu,     Activation::Relu6,    Activation::Relu2,
                            Activation::LeakyRelu, Activation::Silu,     Activation::Selu,     Activation::Sigmoid,
                            Activation::Tanh,      Activation::Mish,     Activation::Linear};

TEST(BackwardKernels, ActivationGradientsMatchReferenceAndFiniteDifferences) {
  std::vector<float> x = randn(4099, 1, 3.0f);
  x.push_back(20.0f);  // gelu_10's clip
  x.push_back(-7.0f);
  const int64_t n = static_cast<int64_t>(x.size());
  const std::vector<float> dy = randn(n, 2);
  for (Activation a : kActs) {
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      want[static_cast<size_t>(i)] = static_cast<float>(dy[static_cast<size_t>(i)] * kernels::reference::activation_grad(a, x[static_cast<size_t>(i)]));
      // The reference derivative against a central difference of the reference activation
      // (away from the kinks of relu-like functions, where the difference is one-sided).
      const double xi = x[static_cast<size_t>(i)];
      if (std::fabs(xi) > 1e-2 && std::fabs(xi - 6.0) > 1e-2 && i % 7 == 0) {
        const double h = 1e-5;
        const double fd = (kernels::reference::activation(a, xi + h) - kernels::reference::activation(a, xi - h)) / (2 * h);
        if (a != Activation::Gelu10 || std::fabs(kernels::reference::activation(Activation::Gelu, xi)) < 9.99) {
          EXPECT_NEAR(kernels::reference::activation_grad(a, xi), fd, 1e-5 * std::max(1.0, std::fabs(fd))) << int(a) << " x=" << xi;
        }
      }
    }
    for (const auto& f : families()) {
      std::vector<float> got(static_cast<size_t>(n));
      f.act_back(kThreads, a, x.data(), dy.data(), got.data(), n);
      EXPECT_TRUE(close(T(got), T(want), 2e-6)) << f.name << " activation " << int(a);
    }
    std::vector<float> inplace = dy;  // dx may alias dy
    kernels::activation_backward(kernels::default_context(), a, x.data(), inplace.data(), inplace.data(), n);
    EXPECT_TRUE(close(T(inplace), T(want), 2e-6)) << "in place, activation " << int(a);
  }
}

TEST(BackwardKernels, ActivationAndGradIsActivationAndItsDerivative) {
  // activation_and_grad (the training forward keeps act'(h) instead of h) gives exactly what
  // activation and activation_backward (with dy = 1) give, in place too, in every family.
  for (const kernels::Context& ctx : contexts())
    for (Activation act : kActs)
      for (int64_t n : {1, 17, 70001}) {
        auto x = randn(n, n + 5, 3.0f);
        x[0] = 0.0f;
        std::vector<float> y(x.size()), d(x.size()), want_y = x, want_d(x.size()), ones(x.size(), 1.0f);
        kernels::activation_and_grad(ctx, act, x.data(), y.data(), d.data(), n);
        kernels::activation(ctx, act, want_y.data(), n);
        kernels::activation_backward(ctx, act, x.data(), ones.data(), want_d.data(), n);
        EXPECT_EQ(y, want_y) << static_cast<int>(act) << " n=" << n;
        EXPECT_EQ(d, want_d) << static_cast<int>(act) << " n=" << n;
        auto inplace = x;  // d over x
        kernels::activation_and_grad(ctx, act, inplace.data(), y.data(), inplace.data(), n);
        EXPECT_EQ(inplace, want_d) << static_cast<int>(act) << " n=" << n << " in place";
      }
}

TEST(BackwardKernels, TileEpilogueKernelsMatchTheirRowByRowDefinitions) {
  // activation_and_grad_rows (pwconv1's tile epilogue) is activation_and_grad on each row, and
  // multiply_rows the plain product, on blocks whose rows are ld floats apart (ld > cols: the
  // values between rows stay untouched), odd widths, d over x, in every family.
  std::vector<kernels::Context> ctxs = {{1, kernels::Family::Portable}};
  if (cpu_has_avx512()) ctxs.push_back({1, kernels::Family::Avx512});
  for (const kernels::Context& ctx : ctxs)
    for (int64_t rows : {1, 7, 130})
      for (int64_t cols : {1, 17, 96, 131}) {
        const int64_t ld = cols + 5, n = rows * ld;
        const auto x = randn(n, rows + cols, 3.0f), f = randn(n, rows * cols + 1);
        for (Activation act : {Activation::Gelu, Activation::Relu, Activation::GeluTanh, Activation::Silu}) {
          std::vector<float> y(static_cast<size_t>(n), -7.0f), d = x, want_y = y, want_d = x;
          kernels::activation_and_grad_rows(ctx, act, rows, cols, d.data(), ld, y.data(), ld, d.data(), ld);
          for (int64_t r = 0; r < rows; ++r)
            kernels::activation_and_grad(ctx, act, x.data() + r * ld, want_y.data() + r * ld, want_d.data() + r * ld, cols);
          EXPECT_EQ(y, want_y) << kernels::family_name(ctx.family) << " act " << int(act) << " " << rows << "x" << cols;
          EXPECT_EQ(d, want_d) << kernels::family_name(ctx.family) << " act " << int(act) << " " << rows << "x" << cols;
        }
        std::vector<float> y = x, want = x;
        kernels::multiply_rows(ctx, rows, cols, y.data(), ld, f.data(), ld);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) want[static_cast<size_t>(r * ld + c)] *= f[static_cast<size_t>(r * ld + c)];
        EXPECT_EQ(y, want) << kernels::family_name(ctx.family) << " multiply " << rows << "x" << cols;
        // With sums: the same products, and each column's added to what the sums held, in double,
        // row by row.
        std::vector<float> ys = x;
        std::vector<double> sums(static_cast<size_t>(cols), 0.5), want_sums = sums;
        kernels::multiply_rows(ctx, rows, cols, ys.data(), ld, f.data(), ld, sums.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) want_sums[static_cast<size_t>(c)] += want[static_cast<size_t>(r * ld + c)];
        EXPECT_EQ(ys, want) << kernels::family_name(ctx.family) << " multiply with sums " << rows << "x" << cols;
        EXPECT_EQ(sums, want_sums) << kernels::family_name(ctx.family) << " sums " << rows << "x" << cols;
      }
}

TEST(BackwardKernels, TileColumnSumsAreTheColumnSumsOfTheGemmsOutput) {
  // A GEMM whose tile epilogue multiplies each tile by a factor and gathers its column sums (the
  // dh GEMM of training, pwconv1's bias gradient): the output is the GEMM then the product, the
  // sums the output's column sums (added to what `out` held), and the same bits on 1 and 3 threads.
  for (const kernels::Context& ctx : contexts())
    for (const bool bf16 : {false, true})
      for (const int64_t M : {1, 64, 149, 1000}) {
        const int64_t K = 40, N = 83, ld = N + 3;
        SCOPED_TRACE(std::string(kernels::family_name(ctx.family)) + (bf16 ? " bf16" : " fp32") + " M=" + std::to_string(M));
        const auto x = randn(M * K, 201 + M), W = randn(N * K, 202, 0.2f), b = randn(N, 203), f = randn(M * ld, 204);
        kernels::PackedLinear P;
        kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, bf16);
        std::vector<float> want(static_cast<size_t>(M * ld), 7.0f);
        kernels::linear(ctx, M, x.data(), K, P, want.data(), ld, false, Activation::Linear);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) want[static_cast<size_t>(m * ld + n)] *= f[static_cast<size_t>(m * ld + n)];
        std::vector<float> first;
        for (const int threads : {1, kThreads}) {
          const kernels::Context c{threads, ctx.family};
          kernels::TileColumnSums sums;
          sums.reset(M, N);
          std::vector<float> y(want.size(), 7.0f);
          const kernels::TileEpilogue epi = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
            kernels::multiply_rows(c.serial(), m1 - m0, n1 - n0, y.data() + m0 * ld + n0, ld, f.data() + m0 * ld + n0, ld,
                                   sums.tile(m0, n0, n1));
          };
          kernels::linear(c, M, x.data(), K, P, y.data(), ld, false, Activation::Linear, &epi);
          EXPECT_EQ(y, want) << threads << " threads";
          std::vector<float> out(static_cast<size_t>(N), 0.25f);
          sums.finish(out.data());
          for (int64_t n = 0; n < N; ++n) {
            double s = 0, mag = 0;
            for (int64_t m = 0; m < M; ++m) {
              s += want[static_cast<size_t>(m * ld + n)];
              mag += std::fabs(want[static_cast<size_t>(m * ld + n)]);
            }
            EXPECT_NEAR(out[static_cast<size_t>(n)], static_cast<float>(0.25 + s), 1e-6 * (mag + 1)) << "column " << n;
          }
          if (first.empty()) first = out;
          else EXPECT_EQ(out, first) << "1 thread against " << threads;
        }
      }
  // Two row tiles in one slot would mix their sums: finish() says so.
  kernels::TileColumnSums sums;
  sums.reset(200, 4);
  sums.tile(0, 0, 4);
  sums.tile(10, 0, 4);
  std::vector<float> out(4);
  EXPECT_THROW(sums.finish(out.data()), Error);
}

TEST(BackwardKernels, AdamWUpdateIsTheSameFloatsInEveryFamily) {
  // The vectorised update (16 at a time, masked tail) against the portable loop, bit for bit, and
  // the portable loop against the formula in double (torch's float32 steps are checked on the
  // training fixtures).
  kernels::AdamWScalars s{};
  s.grad_scale = 0.37f;
  s.w1 = 0.1f;
  s.b2 = 0.999f;
  s.w2 = static_cast<float>(1.0 - 0.999);
  s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(0.999, 3.0)));
  s.eps = 1e-8f;
  s.step_size = static_cast<float>(1e-3 / (1.0 - std::pow(0.9, 3.0)));
  s.keep = static_cast<float>(1.0 - 1e-3 * 0.05);
  for (int64_t n : {1, 15, 17, 40000}) {
    const auto p0 = randn(n, 1), g0 = randn(n, 2, 0.1f), m0 = randn(n, 3, 0.01f);
    auto v0 = randn(n, 4, 1e-4f);
    for (float& v : v0) v = std::fabs(v);
    v0[0] = 0.0f;  // √0
    for (bool zero_g : {false, true}) {
      std::vector<std::vector<float>> got;
      std::vector<kernels::Context> ctxs = {{3, kernels::Family::Portable}};
      if (cpu_has_avx512()) ctxs.push_back({3, kernels::Family::Avx512});
      for (const kernels::Context& ctx : ctxs) {
        std::vector<float> p = p0, g = g0, m = m0, v = v0;
        kernels::adamw_update(ctx, s, p.data(), g.data(), m.data(), v.data(), n, zero_g);
        EXPECT_EQ(g, zero_g ? std::vector<float>(static_cast<size_t>(n), 0.0f) : g0) << kernels::family_name(ctx.family);
        for (auto* t : {&p, &m, &v}) got.push_back(*t);
      }
      if (got.size() == 6) {
        for (size_t t = 0; t < 3; ++t) EXPECT_EQ(got[t], got[t + 3]) << "n=" << n << " tensor " << t;
      }
      for (int64_t k = 0; k < n; ++k) {
        const auto i = static_cast<size_t>(k);
        const double g = static_cast<double>(g0[i]) * s.grad_scale, m = m0[i] + s.w1 * (g - m0[i]);
        const double v = v0[i] * static_cast<double>(s.b2) + s.w2 * g * g;
        const double p = p0[i] * static_cast<double>(s.keep) - s.step_size * (m / (std::sqrt(v) / s.bc2_sqrt + s.eps));
        ASSERT_NEAR(got[0][i], p, 1e-6 * std::max(1.0, std::fabs(p))) << k;
        // m's float rounding is relative to its terms (m0 and g can nearly cancel), not to m.
        ASSERT_NEAR(got[1][i], m, 1e-6 * std::max({1e-6, std::fabs(m), std::fabs(g), std::fabs(static_cast<double>(m0[i]))})) << k;
        ASSERT_NEAR(got[2][i], v, 1e-6 * std::max(1e-6, std::fabs(v))) << k;
      }
    }
  }
}

TEST(BackwardKernels, LayerNormBackwardMatchesReferenceOnOddShapes) {
  for (int64_t C : {1, 3, 13, 57, 96}) {
    for (int64_t rows : {1, 7, 301}) {
      const auto x = randn(rows * C, 10 + C, 2.0f, 0.5f), dy = randn(rows * C, 20 + C);
      const auto gamma = randn(C, 30 + C, 0.5f, 1.0f), beta = randn(C, 40 + C);
      std::vector<float> rdx(static_cast<size_t>(rows * C)), rdg(static_cast<size_t>(C), 0.5f), rdb(static_cast<size_t>(C), 0.5f);
      kernels::reference::layer_norm_backward(x.data(), dy.data(), rows, C, gamma.data(), 1e-6f, rdx.data(), rdg.data(), rdb.data());
      for (const auto& f : families()) {
        std::vector<float> y(static_cast<size_t>(rows * C)), xh(static_cast<size_t>(rows * C)), rs(static_cast<size_t>(rows));
        f.ln_train(kThreads, x.data(), rows, C, gamma.data(), beta.data(), 1e-6f, y.data(), xh.data(), rs.data());
        std::vector<float> ry(static_cast<size_t>(rows * C));
        kernels::reference::layer_norm(x.data(), rows, C, gamma.data(), beta.data(), 1e-6f, ry.data());
        EXPECT_TRUE(close(T(y), T(ry), 1e-5)) << f.name << " forward C=" << C;
        std::vector<float> dx = dy, dg(static_cast<size_t>(C), 0.5f), db(static_cast<size_t>(C), 0.5f);  // += semantics
        f.ln_back(kThreads, dx.data(), xh.data(), rs.data(), rows, C, gamma.data(), dx.data(), dg.data(), db.data());
        EXPECT_TRUE(close(T(dx), T(rdx), 1e-4)) << f.name << " dx C=" << C << " rows=" << rows;
        EXPECT_TRUE(close(T(dg), T(rdg), 1e-4)) << f.name << " dgamma C=" << C;
        EXPECT_TRUE(close(T(db), T(rdb), 1e-4)) << f.name << " dbeta C=" << C;
      }
    }
  }
}

TEST(BackwardKernels, LayerNormReferenceMatchesFiniteDifferences) {
  const int64_t rows = 3, C = 13;
  auto x = randn(rows * C, 5, 1.5f), gamma = randn(C, 6, 0.5f, 1.0f), beta = randn(C, 7);
  const auto w = randn(rows * C, 8);  // loss = Σ w·y
  auto loss = [&] {
    std::vector<float> y(static_cast<size_t>(rows * C));
    kernels::reference::layer_norm(x.data(), rows, C, gamma.data(), beta.data(), 1e-6f, y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(w[i]) * y[i];
    return s;
  };
  std::vector<float> dx(static_cast<size_t>(rows * C)), dg(static_cast<size_t>(C), 0.0f), db(static_cast<size_t>(C), 0.0f);
  kernels::reference::layer_norm_backward(x.data(), w.data(), rows, C, gamma.data(), 1e-6f, dx.data(), dg.data(), db.data());
  for (int64_t i = 0; i < rows * C; i += 5) EXPECT_NEAR(dx[static_cast<size_t>(i)], numeric(loss, x[static_cast<size_t>(i)]), 2e-3);
  for (int64_t c = 0; c < C; c += 3) {
    EXPECT_NEAR(dg[static_cast<size_t>(c)], numeric(loss, gamma[static_cast<size_t>(c)]), 2e-3);
    EXPECT_NEAR(db[static_cast<size_t>(c)], numeric(loss, beta[static_cast<size_t>(c)]), 2e-3);
  }
}

// Taps [49][C] from PyTorch's [C][1][7][7].
std::vector<float> taps_of(const std::vector<float>& w, int64_t C) {
  std::vector<float> t(static_cast<size_t>(49 * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < 49; ++k) t[static_cast<size_t>(k * C + c)] = w[static_cast<size_t>(c * 49 + k)];
  return t;
}

TEST(BackwardKernels, DepthwiseBackwardMatchesReferenceOnOddShapes) {
  struct S {
    int64_t N, H, W, C;
  };
  // Widths below, at and past the x86 weight gradient's runs of 7 pixels (7, 14: whole runs only;
  // 9, 61: a run past the row's end), channels in and past 16-wide blocks.
  for (const S s : {S{1, 1, 1, 3}, S{3, 5, 9, 13}, S{1, 57, 61, 1}, S{1, 57, 61, 57}, S{3, 5, 9, 57}, S{2, 7, 7, 32},
                    S{1, 14, 14, 17}, S{1, 3, 10, 16}}) {
    const int64_t n = s.N * s.H * s.W * s.C;
    const auto x = randn(n, 50 + s.C), dy = randn(n, 60 + s.H), w = randn(49 * s.C, 70, 0.3f);
    std::vector<float> rdx(static_cast<size_t>(n)), rdw(static_cast<size_t>(49 * s.C), 0.25f), rdb(static_cast<size_t>(s.C), 0.25f);
    kernels::reference::dwconv_backward(x.data(), dy.data(), s.N, s.H, s.W, s.C, w.data(), 7, rdx.data(), rdw.data(), rdb.data());
    const auto taps = taps_of(w, s.C);
    // dx through the dispatcher (mirrored forward conv, added to what dx holds) in each family,
    // weight gradients per family below.
    const auto dx0 = randn(n, 80 + s.W);
    std::vector<float> want_dx(static_cast<size_t>(n));
    for (size_t i = 0; i < want_dx.size(); ++i) want_dx[i] = dx0[i] + rdx[i];
    for (const kernels::Context& ctx : contexts()) {
      std::vector<float> dx = dx0, dw49(static_cast<size_t>(49 * s.C), 0.25f), db(static_cast<size_t>(s.C), 0.25f);
      kernels::dwconv7_backward(ctx, x.data(), dy.data(), s.N, s.H, s.W, s.C, taps.data(), dx.data(), dw49.data(), db.data());
      const char* fam = kernels::family_name(ctx.family);
      EXPECT_TRUE(close(T(dx), T(want_dx), 1e-4)) << fam << " dx " << s.N << "x" << s.H << "x" << s.W << "x" << s.C;
      EXPECT_TRUE(close(T(taps_of(rdw, s.C)), T(dw49), 1e-4)) << fam << " dw";
      EXPECT_TRUE(close(T(db), T(rdb), 1e-4)) << fam << " db";
    }
    for (const auto& f : families()) {
      std::vector<float> fw(static_cast<size_t>(49 * s.C), 0.25f), fb(static_cast<size_t>(s.C), 0.25f);
      f.dw_grad(kThreads, x.data(), dy.data(), s.N, s.H, s.W, s.C, fw.data(), fb.data());
      EXPECT_TRUE(close(T(fw), T(taps_of(rdw, s.C)), 1e-4)) << f.name << " dw C=" << s.C;
      EXPECT_TRUE(close(T(fb), T(rdb), 1e-4)) << f.name << " db";
    }
  }
}

// The layer scale and drop path's backward against the definition in double, on odd shapes,
// with and without γ; the families give the same floats.
TEST(BackwardKernels, LayerScaleBackwardMatchesItsDefinition) {
  for (const int64_t N : {1, 3})
    for (const int64_t per : {1, 7, 300})
      for (const int64_t C : {1, 17, 96}) {
        const int64_t rows = N * per;
        const auto G = randn(rows * C, 90 + C), z = randn(rows * C, 91 + per), gam = randn(C, 92, 0.5f);
        std::vector<float> scale = randn(N, 93);
        scale[0] = 0.0f;  // a dropped sample
        for (const bool with_gamma : {true, false}) {
          std::vector<double> want_dz(static_cast<size_t>(rows * C)), want_dg(static_cast<size_t>(C), 0.5),
              want_ds(static_cast<size_t>(C), 0.25);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < C; ++c) {
              const size_t i = static_cast<size_t>(r * C + c);
              const double gs = static_cast<double>(G[i]) * scale[static_cast<size_t>(r / per)];
              want_dz[i] = gs * (with_gamma ? gam[static_cast<size_t>(c)] : 1.0);
              want_dg[static_cast<size_t>(c)] += gs * z[i];
              want_ds[static_cast<size_t>(c)] += want_dz[i];
            }
          std::vector<std::vector<float>> first;
          for (const kernels::Context& ctx : contexts()) {
            std::vector<float> dz(static_cast<size_t>(rows * C)), dg(static_cast<size_t>(C), 0.5f), ds(static_cast<size_t>(C), 0.25f);
            kernels::layer_scale_backward(ctx, G.data(), z.data(), scale.data(), per, with_gamma ? gam.data() : nullptr, rows, C,
                                          dz.data(), dg.data(), ds.data());
            const std::string what = std::string(kernels::family_name(ctx.family)) + " rows=" + std::to_string(rows) +
                                     " C=" + std::to_string(C) + (with_gamma ? " with gamma" : " without");
            EXPECT_TRUE(close(T(dz), T(std::vector<float>(want_dz.begin(), want_dz.end())), 1e-6)) << what << " dz";
            EXPECT_TRUE(close(T(ds), T(std::vector<float>(want_ds.begin(), want_ds.end())), 1e-5)) << what << " dsum";
            if (with_gamma) EXPECT_TRUE(close(T(dg), T(std::vector<float>(want_dg.begin(), want_dg.end())), 1e-5)) << what << " dgamma";
            else EXPECT_EQ(dg, std::vector<float>(static_cast<size_t>(C), 0.5f)) << what << ": no gamma, dgamma untouched";
            if (first.empty()) first = {dz, dg, ds};
            else EXPECT_TRUE(first[0] == dz && first[1] == dg && first[2] == ds) << what << ": not the portable family's floats";
          }
        }
      }
}

TEST(BackwardKernels, DepthwiseReferenceMatchesFiniteDifferences) {
  const int64_t N = 2, H = 5, W = 9, C = 3;
  auto x = randn(N * H * W * C, 80), w = randn(49 * C, 81, 0.3f), b = randn(C, 82);
  const auto g = randn(N * H * W * C, 83);
  auto loss = [&] {
    std::vector<float> y(x.size());
    kernels::reference::dwconv(x.data(), N, H, W, C, w.data(), 7, b.data(), y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(g[i]) * y[i];
    return s;
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(static_cast<size_t>(C), 0.0f);
  kernels::reference::dwconv_backward(x.data(), g.data(), N, H, W, C, w.data(), 7, dx.data(), dw.data(), db.data());
  for (size_t i = 0; i < x.size(); i += 11) EXPECT_NEAR(dx[i], numeric(loss, x[i]), 5e-3);
  for (size_t i = 0; i < w.size(); i += 7) EXPECT_NEAR(dw[i], numeric(loss, w[i]), 5e-3);
  for (int64_t c = 0; c < C; ++c) EXPECT_NEAR(db[static_cast<size_t>(c)], numeric(loss, b[static_cast<size_t>(c)]), 5e-3);
}

// The three GEMMs of a linear layer's training: y = x·Wᵀ, dx = dy·W (pack_kn), dW = dyᵀ·x (linear_at).
TEST(BackwardKernels, LinearBackwardGemmsMatchReference) {
  for (int64_t M : {1, 13, 200}) {
    for (int64_t N : {1, 3, 57, 100}) {
      for (int64_t K : {1, 13, 57, 385}) {
        const auto W = randn(N * K, M + N + K, 0.2f), dy = randn(M * N, 2 * M + N), x = randn(M * K, M + 3 * K);
        // dx[M][K] = dy·W: reference::linear with the transposed weight.
        std::vector<float> Wt(static_cast<size_t>(K * N));
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < K; ++k) Wt[static_cast<size_t>(k * N + n)] = W[static_cast<size_t>(n * K + k)];
        std::vector<float> rdx(static_cast<size_t>(M * K)), dx(static_cast<size_t>(M * K));
        kernels::reference::linear(M, K, N, dy.data(), N, Wt.data(), nullptr, rdx.data(), K, false, Activation::Linear);
        kernels::linear(kernels::default_context(), M, dy.data(), N, kernels::pack_kn(kernels::default_context(), W.data(), K, N, K), dx.data(), K, false, Activation::Linear);
        EXPECT_TRUE(close(T(dx), T(rdx), 1e-4)) << "dx M=" << M << " N=" << N << " K=" << K;
        // dW[N][K] += dyᵀ·x.
        std::vector<float> dyt(static_cast<size_t>(N * M)), xt(static_cast<size_t>(K * M));
        for (int64_t m = 0; m < M; ++m) {
          for (int64_t n = 0; n < N; ++n) dyt[static_cast<size_t>(n * M + m)] = dy[static_cast<size_t>(m * N + n)];
          for (int64_t k = 0; k < K; ++k) xt[static_cast<size_t>(k * M + m)] = x[static_cast<size_t>(m * K + k)];
        }
        std::vector<float> rdw(static_cast<size_t>(N * K), 1.0f);
        kernels::reference::linear(N, K, M, dyt.data(), M, xt.data(), nullptr, rdw.data(), K, true, Activation::Linear);
        for (const auto& f : families()) {
          std::vector<float> dw(static_cast<size_t>(N * K), 1.0f);
          f.linear_at(kThreads, N, dy.data(), N, kernels::pack_kn(kernels::default_context(), x.data(), K, M, K), dw.data(), K, true);
          EXPECT_TRUE(close(T(dw), T(rdw), 1e-4)) << f.name << " dW M=" << M << " N=" << N << " K=" << K;
        }
      }
    }
  }
}

TEST(BackwardKernels, PackingIntoReusedStorageEqualsAFreshPack) {
  // Training packs every step into the same buffers: a bigger matrix first, then smaller ones with
  // a partial last panel, must give exactly what a fresh pack gives (stale values cleared).
  kernels::PackedLinear w, x;
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{100, 70}, {33, 5}, {3, 64}, {64, 1}}) {
    const auto W = randn(N * K, N + K);
    const auto b = randn(N, 2 * N + K);
    kernels::pack_linear_into(kernels::default_context(), W.data(), b.data(), N, K, w);
    kernels::pack_kn_into(kernels::default_context(), W.data(), K, N, K, x);
    const kernels::PackedLinear fw = kernels::pack_linear(kernels::default_context(), W.data(), b.data(), N, K), fx = kernels::pack_kn(kernels::default_context(), W.data(), K, N, K);
    ASSERT_EQ(w.N, fw.N);
    ASSERT_EQ(w.K, fw.K);
    ASSERT_GE(w.panels.size(), fw.panels.size());
    EXPECT_TRUE(std::equal(fw.panels.begin(), fw.panels.end(), w.panels.begin())) << "pack_linear_into N=" << N << " K=" << K;
    EXPECT_EQ(w.bias, fw.bias);
    ASSERT_EQ(x.N, fx.N);
    ASSERT_GE(x.panels.size(), fx.panels.size());
    EXPECT_TRUE(std::equal(fx.panels.begin(), fx.panels.end(), x.panels.begin())) << "pack_kn_into N=" << N << " K=" << K;
  }
}

// bf16 training: the same three GEMMs with bf16 packs must equal the double-precision products
// of the bf16-rounded operands up to fp32 summation error, in every family (the portable one
// everywhere, AVX512_BF16 where the CPU has it), on odd shapes (odd K: a half-filled last pair).
float round_bf16(float v) { return io::bf16_to_f32(io::f32_to_bf16(v)); }
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}

// A GEMM with an ActivationGradient gives the very floats of the GEMM followed by the pass it
// replaces (activation_and_grad_rows): fp32 and bf16, every family, activations with and without
// a derivative in registers (GeluTanh, Mish: through a tile epilogue), rows in partial
// microkernel runs, a partial last panel, K within and over a K block (d written on the last
// block only), rows wider than N (the padding untouched); a caller's tile epilogue still sees
// every value once, after both are written.
TEST(BackwardKernels, ActivationGradientIsTheGemmThenActivationAndGrad) {
  for (const kernels::Context& ctx : contexts())
    for (const bool bf16 : {false, true})
      for (const int64_t K : {40, 600})
        for (const Activation act : {Activation::Gelu, Activation::Relu, Activation::Silu, Activation::QuickGelu,
                                     Activation::Linear, Activation::GeluTanh, Activation::Mish}) {
          const int64_t M = 149, N = 83, ld = N + 5;
          SCOPED_TRACE(std::string(kernels::family_name(ctx.family)) + (bf16 ? " bf16" : " fp32") + " K=" + std::to_string(K) +
                       " act " + std::to_string(static_cast<int>(act)));
          const auto x = randn(M * K, 101 + K), W = randn(N * K, 102, 0.2f), b = randn(N, 103);
          kernels::PackedLinear P;
          kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, bf16);
          std::vector<float> h(static_cast<size_t>(M * ld), 7.0f);
          kernels::linear(ctx, M, x.data(), K, P, h.data(), ld, false, Activation::Linear);
          std::vector<float> want_a = h, want_d = h;
          kernels::activation_and_grad_rows(ctx, act, M, N, h.data(), ld, want_a.data(), ld, want_d.data(), ld);
          std::vector<float> a(h.size(), 7.0f), d(h.size(), 7.0f);
          std::vector<int> seen(static_cast<size_t>(M * N), 0);
          const kernels::TileEpilogue check = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
            for (int64_t m = m0; m < m1; ++m)
              for (int64_t n = n0; n < n1; ++n) {
                const size_t i = static_cast<size_t>(m * ld + n);
                ++seen[static_cast<size_t>(m * N + n)];
                EXPECT_TRUE(a[i] == want_a[i] && d[i] == want_d[i]) << "the epilogue came before (" << m << ", " << n << ")";
              }
          };
          const kernels::ActivationGradient grad{d.data(), ld};
          kernels::linear(ctx, M, x.data(), K, P, a.data(), ld, false, act, &check, &grad);
          EXPECT_EQ(a, want_a) << "act(h)";
          EXPECT_EQ(d, want_d) << "act'(h)";
          EXPECT_EQ(seen, std::vector<int>(seen.size(), 1)) << "every value once";
        }
}

TEST(BackwardKernels, WideTilesOfManyPanelsMatchReference) {
  // Shapes with enough rows that the AVX-512 GEMMs' tiles span many 32-column panels (up to 1 MiB
  // of a K block of panels: 21 fp32 panels at K = 96, 16 or more in bf16 on 3 threads), a partial
  // last panel (N = 1000) and a partial last group of panels, K within and over a K block: y = x·Wᵀ
  // and dW = dyᵀ·x, fp32 and bf16 (rounded operands in the reference).
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const kernels::Context ctx{kThreads, kernels::Family::Avx512};
  for (bool bf16 : {false, true}) {
    if (bf16 && !kernels::native_bf16(ctx)) continue;
    const auto r = [&](std::vector<float> v) { return bf16 ? rounded(std::move(v)) : v; };
    const double tol = bf16 ? 2e-6 : 1e-5;
    for (int64_t K : {96, 400}) {
      const int64_t M = 1500, N = 1000;
      SCOPED_TRACE(std::string(bf16 ? "bf16" : "fp32") + " K=" + std::to_string(K));
      const auto x = randn(M * K, 71 + K), W = randn(N * K, 72 + K, 0.1f), b = randn(N, 73);
      kernels::PackedLinear P;
      kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, bf16);
      std::vector<float> y(static_cast<size_t>(M * N)), ry(y.size());
      kernels::linear(ctx, M, x.data(), K, P, y.data(), N, false, Activation::Gelu);
      kernels::reference::linear(M, N, K, r(x).data(), K, r(W).data(), b.data(), ry.data(), N, false, Activation::Gelu);
      EXPECT_TRUE(close(T(y), T(ry), tol)) << "y";
    }
    // dW[1500][1000] += dyᵀ·x over 40 rows: the output's 1000 columns are x's.
    const int64_t M = 40, N = 1500, K = 1000;
    const auto dy = randn(M * N, 81), x = randn(M * K, 82);
    const auto dyr = r(dy), xr = r(x);
    std::vector<float> dyt(static_cast<size_t>(N * M)), xt(static_cast<size_t>(K * M));
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) dyt[static_cast<size_t>(n * M + m)] = dyr[static_cast<size_t>(m * N + n)];
      for (int64_t k = 0; k < K; ++k) xt[static_cast<size_t>(k * M + m)] = xr[static_cast<size_t>(m * K + k)];
    }
    std::vector<float> dw(static_cast<size_t>(N * K), 1.0f), rdw(dw);
    kernels::PackedLinear P;
    kernels::pack_kn_into(ctx, x.data(), K, M, K, P, bf16);
    kernels::linear_at(ctx, N, dy.data(), N, P, dw.data(), K, true);
    kernels::reference::linear(N, K, M, dyt.data(), M, xt.data(), nullptr, rdw.data(), K, true, Activation::Linear);
    EXPECT_TRUE(close(T(dw), T(rdw), tol)) << (bf16 ? "bf16" : "fp32") << " dW";
  }
}

// kernels::weight_gradient, the training pass's dW = dyᵀ·x: on thousands of pixels the AVX-512
// kernels sum in groups of 1024 pixels (blocks of 256, bf16 pairs) into partial sums. Shapes
// around those boundaries (4 groups exactly, one pixel more, an odd count: a half pair, a short
// last block), dW rows over a unit's 384 (N = 500), columns over its 12 panels (K = 400) and a
// partial panel; fp32 and bf16 (rounded operands in the reference), accumulating onto ones, in
// every family. The sums' order is fixed by M alone: 1, 2 and 3 threads give the same bits.
TEST(BackwardKernels, WeightGradientMatchesReferenceAndIgnoresThreadCount) {
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{4096, 13, 33}, {4097, 100, 96}, {4891, 500, 40}, {6001, 57, 400}, {5001, 1, 1}, {4500, 384, 96}};
  std::vector<std::pair<const char*, kernels::Family>> fams = {{"portable", kernels::Family::Portable}};
  if (cpu_has_avx512()) fams.push_back({"avx512", kernels::Family::Avx512});
  for (bool bf16 : {false, true})
    for (const Shape& s : shapes) {
      const auto r = [&](std::vector<float> v) { return bf16 ? rounded(std::move(v)) : v; };
      const auto dy = randn(s.M * s.N, 91 + s.M), x = randn(s.M * s.K, 92 + s.K);
      const auto dyr = r(dy), xr = r(x);
      std::vector<float> dyt(static_cast<size_t>(s.N * s.M)), xt(static_cast<size_t>(s.K * s.M));
      for (int64_t m = 0; m < s.M; ++m) {
        for (int64_t n = 0; n < s.N; ++n) dyt[static_cast<size_t>(n * s.M + m)] = dyr[static_cast<size_t>(m * s.N + n)];
        for (int64_t k = 0; k < s.K; ++k) xt[static_cast<size_t>(k * s.M + m)] = xr[static_cast<size_t>(m * s.K + k)];
      }
      std::vector<float> rdw(static_cast<size_t>(s.N * s.K), 1.0f);
      kernels::reference::linear(s.N, s.K, s.M, dyt.data(), s.M, xt.data(), nullptr, rdw.data(), s.K, true, Activation::Linear);
      for (const auto& [name, fam] : fams) {
        SCOPED_TRACE(std::string(name) + (bf16 ? " bf16" : " fp32") + " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                     " K=" + std::to_string(s.K));
        std::vector<float> first;
        for (int threads : {3, 2, 1}) {
          std::vector<float> dw(rdw.size(), 1.0f);
          kernels::weight_gradient({threads, fam}, s.M, dy.data(), s.N, s.N, x.data(), s.K, s.K, dw.data(), bf16);
          if (first.empty()) {
            EXPECT_TRUE(close(T(dw), T(rdw), 1e-5)) << "dW";
            first = dw;
          } else {
            EXPECT_TRUE(std::equal(dw.begin(), dw.end(), first.begin())) << threads << " threads: other bits than 3 threads";
          }
        }
      }
    }
}

TEST(BackwardKernels, Bf16TrainingGemmsMatchReferenceOnRoundedOperands) {
  std::vector<std::pair<const char*, kernels::Context>> ctxs = {{"portable", {kThreads, kernels::Family::Portable}}};
  if (kernels::native_bf16({1, kernels::Family::Avx512})) ctxs.push_back({"avx512_bf16", {kThreads, kernels::Family::Avx512}});
  for (const auto& [name, ctx] : ctxs)
    for (int64_t M : {1, 13, 200})
      for (int64_t N : {1, 3, 57, 100})
        for (int64_t K : {1, 13, 57, 385}) {
          SCOPED_TRACE(std::string(name) + " M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
          const auto W = randn(N * K, M + N + K, 0.2f), b = randn(N, 7 * N), dy = randn(M * N, 2 * M + N), x = randn(M * K, M + 3 * K);
          const auto Wr = rounded(W), dyr = rounded(dy), xr = rounded(x);
          kernels::PackedLinear P;
          // y = x·Wᵀ + b
          std::vector<float> y(static_cast<size_t>(M * N)), ry(y.size());
          kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, /*bf16=*/true);
          kernels::linear(ctx, M, x.data(), K, P, y.data(), N, false, Activation::Linear);
          kernels::reference::linear(M, N, K, xr.data(), K, Wr.data(), b.data(), ry.data(), N, false, Activation::Linear);
          EXPECT_TRUE(close(T(y), T(ry), 2e-6)) << "y";
          // dx = dy·W
          std::vector<float> Wt(static_cast<size_t>(K * N));
          for (int64_t n = 0; n < N; ++n)
            for (int64_t k = 0; k < K; ++k) Wt[static_cast<size_t>(k * N + n)] = Wr[static_cast<size_t>(n * K + k)];
          std::vector<float> dx(static_cast<size_t>(M * K)), rdx(dx.size());
          kernels::pack_kn_into(ctx, W.data(), K, N, K, P, /*bf16=*/true);
          kernels::linear(ctx, M, dy.data(), N, P, dx.data(), K, false, Activation::Linear);
          kernels::reference::linear(M, K, N, dyr.data(), N, Wt.data(), nullptr, rdx.data(), K, false, Activation::Linear);
          EXPECT_TRUE(close(T(dx), T(rdx), 2e-6)) << "dx";
          // dW += dyᵀ·x (accumulating onto ones)
          std::vector<float> dyt(static_cast<size_t>(N * M)), xt(static_cast<size_t>(K * M));
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) dyt[static_cast<size_t>(n * M + m)] = dyr[static_cast<size_t>(m * N + n)];
            for (int64_t k = 0; k < K; ++k) xt[static_cast<size_t>(k * M + m)] = xr[static_cast<size_t>(m * K + k)];
          }
          std::vector<float> dw(static_cast<size_t>(N * K), 1.0f), rdw(dw);
          kernels::pack_kn_into(ctx, x.data(), K, M, K, P, /*bf16=*/true);
          kernels::linear_at(ctx, N, dy.data(), N, P, dw.data(), K, true);
          kernels::reference::linear(N, K, M, dyt.data(), M, xt.data(), nullptr, rdw.data(), K, true, Activation::Linear);
          EXPECT_TRUE(close(T(dw), T(rdw), 2e-6)) << "dW";
          // The rounding really happened: the fp32 product of the unrounded operands differs.
          if (M * N * K > 1000) {
            std::vector<float> fy(y.size());
            kernels::reference::linear(M, N, K, x.data(), K, W.data(), b.data(), fy.data(), N, false, Activation::Linear);
            EXPECT_FALSE(close(T(y), T(fy), 1e-5)) << "y is not the fp32 product";
          }
        }
}

TEST(BackwardKernels, Bf16PacksIntoReusedStorageEqualFreshPacksAndFamiliesRoundAlike) {
  kernels::PackedLinear w, x;
  const kernels::Context portable{kThreads, kernels::Family::Portable};
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{100, 71}, {33, 5}, {3, 64}, {64, 1}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " K=" + std::to_string(K));
    const auto W = randn(N * K, N + K), b = randn(N, 2 * N + K);
    kernels::pack_linear_into(kernels::default_context(), W.data(), b.data(), N, K, w, /*bf16=*/true);
    kernels::pack_kn_into(kernels::default_context(), W.data(), K, N, K, x, /*bf16=*/true);
    // pack_linear_into's bf16 form is the inference pack (pack_linear_scaled with bf16) exactly.
    const auto fw = kernels::pack_linear_scaled(kernels::default_context(), W.data(), nullptr, nullptr, b.data(), N, K, true);
    ASSERT_TRUE(w.is_bf16());
    ASSERT_GE(w.panels_bf16.size(), fw.panels_bf16.size());
    EXPECT_TRUE(std::equal(fw.panels_bf16.begin(), fw.panels_bf16.end(), w.panels_bf16.begin()));
    EXPECT_EQ(w.bias, fw.bias);
    // pack_kn_into's bf16 form (here of B = W, N rows to sum over, K columns): element (r, c) =
    // bf16(B[r][c]) at pair r/2, half r%2, padding 0; the same bits from either family's rounding.
    const auto fx = kernels::pack_kn(portable, W.data(), K, N, K, /*bf16=*/true);
    const int64_t R2 = (N + 1) / 2, panels = (K + 31) / 32;
    ASSERT_EQ(fx.panels_bf16.size(), static_cast<size_t>(panels * R2 * 64));
    EXPECT_TRUE(std::equal(fx.panels_bf16.begin(), fx.panels_bf16.end(), x.panels_bf16.begin()));
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t rr = 0; rr < R2; ++rr)
        for (int64_t j = 0; j < 32; ++j)
          for (int64_t h = 0; h < 2; ++h) {
            const int64_t r = 2 * rr + h, c = 32 * p + j;
            const uint16_t want = r < N && c < K ? io::f32_to_bf16(W[static_cast<size_t>(r * K + c)]) : 0;
            ASSERT_EQ(fx.panels_bf16[static_cast<size_t>(((p * R2 + rr) * 32 + j) * 2 + h)], want) << "r=" << r << " c=" << c;
          }
    // Switching a pack between fp32 and bf16 leaves one form only.
    kernels::pack_kn_into(kernels::default_context(), W.data(), K, N, K, x);
    EXPECT_FALSE(x.is_bf16());
  }
  // The AVX512_BF16 conversion rounds to nearest even as io::f32_to_bf16 does (ties, ±0, ±inf,
  // values near the largest finite bf16; denormal inputs, which it flushes to zero, aside).
  if (!kernels::native_bf16({1, kernels::Family::Avx512})) GTEST_SKIP() << "no AVX512_BF16 here";
  std::vector<float> r0 = randn(37, 5, 100.0f), r1 = randn(37, 6);
  const uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0x80000000u, 0x00000000u, 0x7f800000u, 0xff800000u, 0x7f7fffffu, 0x3f80ffffu};
  for (size_t i = 0; i < std::size(specials); ++i) std::memcpy(&r0[i], &specials[i], 4), std::memcpy(&r1[i + 10], &specials[i], 4);
  std::vector<uint32_t> a(37), c(37);
  kernels::x86::interleave_bf16(r0.data(), r1.data(), 37, a.data());
  kernels::portable::interleave_bf16(r0.data(), r1.data(), 37, c.data());
  EXPECT_EQ(a, c);
  kernels::x86::interleave_bf16(r0.data(), nullptr, 37, a.data());
  kernels::portable::interleave_bf16(r0.data(), nullptr, 37, c.data());
  EXPECT_EQ(a, c);
}

// bf16 training keeps act(h) in bf16 between pwconv1 and its two readers, and dh between its GEMM
// (whose tiles are handed over, never stored) and its two (kernels.h, "maps kept in bf16"): each
// entry point must give the bits of its fp32 form on the map widened to fp32, in every family,
// on odd shapes: K over one bf16 K block (600: 300 pairs), odd K and odd row
// strides (the widening route), rows that start at 2-byte boundaries, thread counts 3 and 1.
std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = io::f32_to_bf16(v[i]);
  return out;
}
std::vector<float> widen(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = io::bf16_to_f32(v[i]);
  return out;
}

TEST(BackwardKernels, MapsKeptInBf16GiveTheBitsOfTheirFp32Forms) {
  for (const kernels::Context& base : contexts())
    for (const int threads : {kThreads, 1}) {
      const kernels::Context ctx{threads, base.family};
      SCOPED_TRACE(std::string(kernels::family_name(ctx.family)) + " threads " + std::to_string(threads));
      // round_to_bf16 rounds to nearest even as io::f32_to_bf16 (normal values), odd lengths included.
      for (const int64_t n : {1, 31, 1001}) {
        const auto v = randn(n, 300 + n, 50.0f);
        std::vector<uint16_t> got(static_cast<size_t>(n) + 1, 0xabcd);
        kernels::round_to_bf16(ctx, v.data(), n, got.data() + 1);  // at a 2-byte boundary
        EXPECT_EQ(std::vector<uint16_t>(got.begin() + 1, got.end()), bf16_bits(v)) << "n=" << n;
        EXPECT_EQ(got[0], 0xabcd) << "wrote before the output";
      }
      // multiply_rows_to_bf16 (dh's tile consumer): the bits of multiply_rows then round_to_bf16,
      // sums alike; widths across its 64-column strips, rows ld apart, nothing written between rows.
      for (const int64_t rows : {1, 7, 130})
        for (const int64_t cols : {1, 17, 64, 96, 131}) {
          SCOPED_TRACE("multiply_rows_to_bf16 " + std::to_string(rows) + "x" + std::to_string(cols));
          const int64_t ld = cols + 5, n = rows * ld;
          const auto y0 = randn(n, 330 + rows + cols, 3.0f), f = randn(n, 331 + rows * cols);
          std::vector<float> want_y = y0, y = y0;
          std::vector<double> want_sums(static_cast<size_t>(cols), 0.5), sums = want_sums;
          std::vector<uint16_t> want(static_cast<size_t>(n), 0xabcd), got = want;
          kernels::multiply_rows(ctx.serial(), rows, cols, want_y.data(), ld, f.data(), ld, want_sums.data());
          for (int64_t r = 0; r < rows; ++r) kernels::round_to_bf16(ctx.serial(), want_y.data() + r * ld, cols, want.data() + r * ld);
          kernels::multiply_rows_to_bf16(ctx.serial(), rows, cols, y.data(), ld, f.data(), ld, got.data(), ld, sums.data());
          EXPECT_EQ(got, want);
          EXPECT_EQ(sums, want_sums);
          std::vector<uint16_t> no_sums(static_cast<size_t>(n), 0xabcd);
          y = y0;
          kernels::multiply_rows_to_bf16(ctx.serial(), rows, cols, y.data(), ld, f.data(), ld, no_sums.data(), ld);
          EXPECT_EQ(no_sums, want) << "without sums";
        }
      // pwconv1 with its output kept in bf16: act(h) rounded, act'(h) in fp32 as before.
      for (const int64_t K : {7, 40, 600})
        for (const Activation act : {Activation::Gelu, Activation::Relu, Activation::Linear, Activation::Mish}) {
          const int64_t M = 149, N = 83, ld = N + 4;
          SCOPED_TRACE("linear_bf16_out K=" + std::to_string(K) + " act " + std::to_string(static_cast<int>(act)));
          const auto x = randn(M * K, 311 + K), W = randn(N * K, 312, 0.2f), b = randn(N, 313);
          kernels::PackedLinear P;
          kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, /*bf16=*/true);
          std::vector<float> h(static_cast<size_t>(M * ld), 7.0f), want_d(h.size(), 7.0f), d(h.size(), 7.0f);
          const kernels::ActivationGradient want_grad{want_d.data(), ld}, grad{d.data(), ld};
          kernels::linear(ctx, M, x.data(), K, P, h.data(), ld, false, act, nullptr, &want_grad);
          std::vector<uint16_t> want(h.size(), 0x7777), got(h.size() + 1, 0x7777);
          for (int64_t m = 0; m < M; ++m) kernels::round_to_bf16(ctx, h.data() + m * ld, N, want.data() + m * ld);
          kernels::linear_bf16_out(ctx, M, x.data(), K, P, got.data() + 1, ld, act, grad);
          EXPECT_EQ(std::vector<uint16_t>(got.begin() + 1, got.end()), want) << "act(h) (and nothing between rows)";
          EXPECT_EQ(got[0], 0x7777);
          EXPECT_EQ(d, want_d) << "act'(h)";
        }
      // pwconv2 reading it: aligned pairs (the x86 route), odd K or stride (the widening route).
      // The last shape's rows start 2 bytes past a 4-byte boundary (widened too).
      struct LinShape {
        int64_t K, lda, offset;
      };
      for (const LinShape s : {LinShape{40, 40, 0}, LinShape{600, 602, 0}, LinShape{7, 8, 0}, LinShape{40, 41, 0},
                               LinShape{40, 40, 1}})
        for (const bool accumulate : {false, true}) {
          const int64_t M = 149, N = 37;
          SCOPED_TRACE("linear on bf16 A, K=" + std::to_string(s.K) + " lda=" + std::to_string(s.lda) + " offset " +
                       std::to_string(s.offset) + (accumulate ? " +=" : ""));
          const auto a16 = bf16_bits(randn(M * s.lda + s.offset, 321 + s.K, 3.0f));
          const uint16_t* A = a16.data() + s.offset;
          const auto W = randn(N * s.K, 322, 0.2f), b = randn(N, 323);
          const auto af = widen(std::vector<uint16_t>(A, A + M * s.lda));
          kernels::PackedLinear P;
          kernels::pack_linear_into(ctx, W.data(), b.data(), N, s.K, P, /*bf16=*/true);
          std::vector<float> want(static_cast<size_t>(M * N), 0.5f), got(want);
          kernels::linear(ctx, M, af.data(), s.lda, P, want.data(), N, accumulate, Activation::Linear);
          std::vector<int> seen(want.size(), 0);
          const kernels::TileEpilogue count = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
            for (int64_t m = m0; m < m1; ++m)
              for (int64_t n = n0; n < n1; ++n) ++seen[static_cast<size_t>(m * N + n)];
          };
          kernels::linear(ctx, M, A, s.lda, P, got.data(), N, accumulate, Activation::Linear, &count);
          EXPECT_EQ(got, want);
          EXPECT_EQ(seen, std::vector<int>(seen.size(), 1)) << "the epilogue saw every value once";
        }
      // dh's GEMM handing its tiles over: the values of linear() with a tile epilogue, each once,
      // in tiles that a TileColumnSums accepts (row tiles at least kSlotRows apart).
      for (const int64_t M : {1, 149, 1000})
        for (const int64_t K : {40, 600})  // 600: partial sums kept in the tile buffer between K blocks
          for (const bool bf16 : {false, true}) {
            const int64_t N = 83;
            SCOPED_TRACE("linear_tiles M=" + std::to_string(M) + " K=" + std::to_string(K) + (bf16 ? " bf16" : " fp32"));
            const auto x = randn(M * K, 351 + M), W = randn(N * K, 352, 0.2f), b = randn(N, 353);
            kernels::PackedLinear P;
            kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, bf16);
            std::vector<float> want(static_cast<size_t>(M * N)), got(want.size(), 7.0f);
            kernels::linear(ctx, M, x.data(), K, P, want.data(), N, false, Activation::Linear);
            std::vector<int> seen(want.size(), 0);
            kernels::TileColumnSums sums;
            sums.reset(M, N);
            const kernels::TileConsumer take = [&](const kernels::OutputTile& o) {
              sums.tile(o.m0, o.n0, o.n1);
              for (int64_t m = o.m0; m < o.m1; ++m)
                for (int64_t n = o.n0; n < o.n1; ++n) {
                  got[static_cast<size_t>(m * N + n)] = o.data[(m - o.m0) * o.ld + (n - o.n0)];
                  ++seen[static_cast<size_t>(m * N + n)];
                }
            };
            kernels::linear_tiles(ctx, M, x.data(), K, P, take);
            EXPECT_EQ(got, want);
            EXPECT_EQ(seen, std::vector<int>(seen.size(), 1)) << "every value once";
            std::vector<float> unused(static_cast<size_t>(N), 0.0f);
            EXPECT_NO_THROW(sums.finish(unused.data())) << "row tiles closer than kSlotRows";
          }
      // dW2 from it (bf16 x) and dW1 from dh kept in bf16 (bf16 dy): the grouped kernel
      // (M ≥ 4096) and the packed route (linear_at on bf16 A), and the pack itself.
      for (const int64_t M : {41, 4097}) {
        const int64_t N = 57, K = 100, ldx = 104, ldy = 59;
        SCOPED_TRACE("weight_gradient on bf16 maps, M=" + std::to_string(M));
        const auto dy = randn(M * ldy, 331 + M);
        const auto x16 = bf16_bits(randn(M * ldx, 332 + M)), dy16 = bf16_bits(dy);
        const auto xf = widen(x16), dyf = widen(dy16);
        std::vector<float> want(static_cast<size_t>(N * K), 1.0f), got(want);
        kernels::weight_gradient(ctx, M, dy.data(), ldy, N, xf.data(), ldx, K, want.data(), /*bf16=*/true);
        kernels::weight_gradient(ctx, M, dy.data(), ldy, N, x16.data(), ldx, K, got.data());
        EXPECT_EQ(got, want) << "bf16 x";
        want.assign(want.size(), 1.0f), got = want;
        kernels::weight_gradient(ctx, M, dyf.data(), ldy, N, xf.data(), ldx, K, want.data(), /*bf16=*/true);
        kernels::weight_gradient(ctx, M, dy16.data(), ldy, N, xf.data(), ldx, K, got.data());
        EXPECT_EQ(got, want) << "bf16 dy";
        kernels::PackedLinear pw, pg;
        kernels::pack_kn_into(ctx, xf.data(), ldx, M, K, pw, /*bf16=*/true);
        kernels::pack_kn_into(ctx, x16.data(), ldx, M, K, pg);
        EXPECT_TRUE(pg.is_bf16());
        EXPECT_EQ(pg.panels_bf16, pw.panels_bf16) << "pack_kn_into from bf16";
      }
    }
  if (!kernels::native_bf16({1, kernels::Family::Avx512})) return;
  for (const int64_t n : {1, 16, 17, 37, 64}) {  // the two families interleave bf16 rows alike
    const auto r0 = bf16_bits(randn(n, 341)), r1 = bf16_bits(randn(n, 342));
    std::vector<uint32_t> a(static_cast<size_t>(n) + 1, 9u), c(a);
    kernels::x86::interleave_bf16(r0.data(), r1.data(), n, a.data());
    kernels::portable::interleave_bf16(r0.data(), r1.data(), n, c.data());
    EXPECT_EQ(a, c) << "n=" << n;
    kernels::x86::interleave_bf16(r0.data(), nullptr, n, a.data());
    kernels::portable::interleave_bf16(r0.data(), nullptr, n, c.data());
    EXPECT_EQ(a, c) << "n=" << n << " (no second row)";
  }
}

// The producers and readers of the maps bf16 training also keeps in bf16 (t, the block's
// LayerNorm output; dz; dh from its tile consumer), and the fused depthwise conv + LayerNorm: each
// gives the bits of the steps it replaces, in every family, at rows on 64-byte boundaries (where
// the x86 kernels stream whole rows past the caches) and off them.
TEST(BackwardKernels, FusedAndBf16ProducersGiveTheBitsOfTheirSteps) {
  for (const kernels::Context& base : contexts())
    for (const int threads : {kThreads, 1}) {
      const kernels::Context ctx{threads, base.family};
      SCOPED_TRACE(std::string(kernels::family_name(ctx.family)) + " threads " + std::to_string(threads));
      // dwconv7_ln_train = dwconv7 then layer_norm_train; y in fp32 or rounded to bf16.
      for (const auto& [N, H, W, C] : {std::array<int64_t, 4>{2, 9, 11, 24}, std::array<int64_t, 4>{1, 5, 3, 13}}) {
        const int64_t M = N * H * W;
        const auto x = randn(M * C, 350 + C, 2.0f), w49 = randn(49 * C, 351, 0.2f), bias = randn(C, 352);
        const auto gamma = randn(C, 353, 1.0f, 1.0f), beta = randn(C, 354);
        std::vector<float> d(static_cast<size_t>(M * C)), y(d.size()), xh(d.size()), rs(static_cast<size_t>(M));
        kernels::dwconv7(ctx, x.data(), N, H, W, C, w49.data(), bias.data(), d.data());
        kernels::layer_norm_train(ctx, d.data(), M, C, gamma.data(), beta.data(), 1e-6f, y.data(), xh.data(), rs.data());
        std::vector<float> y2(d.size(), 7.0f), xh2(d.size(), 7.0f), rs2(rs.size(), 7.0f);
        kernels::dwconv7_ln_train(ctx, x.data(), N, H, W, C, w49.data(), bias.data(), gamma.data(), beta.data(), 1e-6f,
                                  y2.data(), nullptr, xh2.data(), rs2.data());
        EXPECT_EQ(y2, y) << "dwconv7_ln_train y, C=" << C;
        EXPECT_EQ(xh2, xh) << "x̂";
        EXPECT_EQ(rs2, rs) << "1/σ";
        std::vector<uint16_t> y16(d.size(), 0x7777), want16(d.size());
        kernels::round_to_bf16(ctx, y.data(), M * C, want16.data());
        kernels::dwconv7_ln_train(ctx, x.data(), N, H, W, C, w49.data(), bias.data(), gamma.data(), beta.data(), 1e-6f,
                                  nullptr, y16.data(), xh2.data(), rs2.data());
        EXPECT_EQ(y16, want16) << "y kept in bf16";
        EXPECT_EQ(xh2, xh);
      }
      // pwconv1 on t kept in bf16 = on t widened; whole panels at 64-byte rows (streamed) and a
      // partial last panel; K odd takes the widening route.
      for (const auto& [N, K] : {std::array<int64_t, 2>{96, 64}, std::array<int64_t, 2>{80, 40}, std::array<int64_t, 2>{64, 7}}) {
        const int64_t M = 149;
        SCOPED_TRACE("linear_bf16_out on bf16 A, N=" + std::to_string(N) + " K=" + std::to_string(K));
        const auto a16 = bf16_bits(randn(M * K, 360 + K, 2.0f));
        const auto af = widen(a16);
        const auto W = randn(N * K, 361, 0.2f), b = randn(N, 362);
        kernels::PackedLinear P;
        kernels::pack_linear_into(ctx, W.data(), b.data(), N, K, P, /*bf16=*/true);
        kernels::AlignedVector<float> want_d(static_cast<size_t>(M * N), 7.0f), d(want_d.size(), 7.0f);
        kernels::AlignedVector<uint16_t> want(want_d.size(), 0x7777), got(want.size(), 0x7777);
        kernels::linear_bf16_out(ctx, M, af.data(), K, P, want.data(), N, Activation::Gelu, {want_d.data(), N});
        kernels::linear_bf16_out(ctx, M, a16.data(), K, P, got.data(), N, Activation::Gelu, {d.data(), N});
        EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << "act(h)";
        EXPECT_TRUE(std::equal(d.begin(), d.end(), want_d.begin())) << "act'(h)";
        // … and the line-aligned output equals the unaligned one (a 2-byte and 4-byte offset).
        std::vector<uint16_t> off(want.size() + 1, 0x7777);
        std::vector<float> doff(want_d.size() + 1, 7.0f);
        kernels::linear_bf16_out(ctx, M, af.data(), K, P, off.data() + 1, N, Activation::Gelu, {doff.data() + 1, N});
        EXPECT_TRUE(std::equal(got.begin(), got.end(), off.begin() + 1)) << "act(h) off the line boundary";
        EXPECT_TRUE(std::equal(d.begin(), d.end(), doff.begin() + 1)) << "act'(h) off the line boundary";
        // act'(h) kept in bf16 (ActivationGradient::d16): act'(h) in fp32, rounded; act(h) as before.
        kernels::AlignedVector<uint16_t> want_d16(want.size()), d16(want.size(), 0x7777), got2(want.size(), 0x7777);
        kernels::round_to_bf16(ctx, want_d.data(), M * N, want_d16.data());
        for (const int64_t o : {0, 1}) {  // on and off the line boundary
          std::vector<uint16_t> c(want.size() + 1, 0x7777), g(want.size() + 1, 0x7777);
          kernels::linear_bf16_out(ctx, M, a16.data(), K, P, c.data() + o, N, Activation::Gelu, {nullptr, N, g.data() + o});
          EXPECT_TRUE(std::equal(want.begin(), want.end(), c.begin() + o)) << "act(h) beside a bf16 act'(h), offset " << o;
          EXPECT_TRUE(std::equal(want_d16.begin(), want_d16.end(), g.begin() + o)) << "act'(h) in bf16, offset " << o;
        }
        kernels::linear_bf16_out(ctx, M, af.data(), K, P, got2.data(), N, Activation::Mish, {nullptr, N, d16.data()});
        std::vector<float> hm(want.size()), dm(want.size());
        const kernels::ActivationGradient mish_grad{dm.data(), N};
        kernels::linear(ctx, M, af.data(), K, P, hm.data(), N, false, Activation::Mish, nullptr, &mish_grad);
        std::vector<uint16_t> wm(want.size()), wdm(want.size());
        kernels::round_to_bf16(ctx, hm.data(), M * N, wm.data());
        kernels::round_to_bf16(ctx, dm.data(), M * N, wdm.data());
        EXPECT_TRUE(std::equal(wm.begin(), wm.end(), got2.begin())) << "Mish (the fallback) act(h)";
        EXPECT_TRUE(std::equal(wdm.begin(), wdm.end(), d16.begin())) << "Mish (the fallback) act'(h) in bf16";
      }
      // dz kept in bf16: layer_scale_backward's fp32 dz rounded, the sums from fp32 as before.
      for (const bool with_gamma : {true, false}) {
        const int64_t rows = 300, C = 37, per = 100;
        const auto G = randn(rows * C, 370), z = randn(rows * C, 371), scale = randn(3, 372, 0.5f, 1.0f), gam = randn(C, 373);
        std::vector<float> dz(static_cast<size_t>(rows * C)), dg(static_cast<size_t>(C), 0.5f), ds(dg), dg2(dg), ds2(dg);
        std::vector<uint16_t> want(dz.size()), dz16(dz.size(), 0x7777);
        const float* gp = with_gamma ? gam.data() : nullptr;
        kernels::layer_scale_backward(ctx, G.data(), z.data(), scale.data(), per, gp, rows, C, dz.data(), dg.data(), ds.data());
        kernels::round_to_bf16(ctx, dz.data(), rows * C, want.data());
        kernels::layer_scale_backward(ctx, G.data(), z.data(), scale.data(), per, gp, rows, C, dz16.data(), dg2.data(), ds2.data());
        EXPECT_EQ(dz16, want) << "dz in bf16, gamma " << with_gamma;
        EXPECT_EQ(dg2, dg);
        EXPECT_EQ(ds2, ds);
      }
      // dW2 from dz and act(h) both kept in bf16 (grouped kernel and packed route), and dh's GEMM
      // on dz kept in bf16 (tiles as on dz widened).
      for (const int64_t M : {41, 4097}) {
        const int64_t N = 57, K = 100, ldx = 104, ldy = 58;
        SCOPED_TRACE("bf16 dz, M=" + std::to_string(M));
        const auto x16 = bf16_bits(randn(M * ldx, 380 + M)), dy16 = bf16_bits(randn(M * ldy, 381 + M));
        const auto xf = widen(x16), dyf = widen(dy16);
        std::vector<float> want(static_cast<size_t>(N * K), 1.0f), got(want);
        kernels::weight_gradient(ctx, M, dyf.data(), ldy, N, xf.data(), ldx, K, want.data(), /*bf16=*/true);
        kernels::weight_gradient(ctx, M, dy16.data(), ldy, N, x16.data(), ldx, K, got.data());
        EXPECT_EQ(got, want) << "bf16 dy and x";
        const auto W2 = randn(N * ldy, 382, 0.2f);  // dh = dz·W2 with dz [M][ldy], W2 packed kn
        kernels::PackedLinear P;
        kernels::pack_kn_into(ctx, W2.data(), N, ldy, N, P, /*bf16=*/true);
        for (const int64_t off : {0, 1}) {  // rows at 4-byte boundaries (pairs), then 2 bytes past
          std::vector<uint16_t> a(dy16.size() + 1);
          std::copy(dy16.begin(), dy16.end(), a.begin() + off);
          std::vector<float> w(static_cast<size_t>(M * N), 0.0f), g(w);
          const auto into = [&](std::vector<float>& out) {
            return kernels::TileConsumer([&out, N](const kernels::OutputTile& o) {
              for (int64_t m = o.m0; m < o.m1; ++m)
                for (int64_t n = o.n0; n < o.n1; ++n) out[static_cast<size_t>(m * N + n)] += o.data[(m - o.m0) * o.ld + n - o.n0];
            });
          };
          kernels::linear_tiles(ctx, M, dyf.data(), ldy, P, into(w));
          kernels::linear_tiles(ctx, M, a.data() + off, ldy, P, into(g));
          EXPECT_EQ(g, w) << "linear_tiles on bf16 A, offset " << off;
        }
      }
      // dh's tile consumer at 64-byte rows: whole 64-column strips streamed, the rest stored.
      for (const int64_t cols : {128, 160}) {
        const int64_t rows = 37;
        const auto y0 = randn(rows * cols, 390 + cols, 3.0f), f = randn(rows * cols, 391);
        std::vector<float> wy = y0, y = y0;
        std::vector<double> ws(static_cast<size_t>(cols), 0.25), sums(ws);
        kernels::AlignedVector<uint16_t> want(static_cast<size_t>(rows * cols)), got(want.size(), 0x7777);
        kernels::multiply_rows(ctx.serial(), rows, cols, wy.data(), cols, f.data(), cols, ws.data());
        kernels::round_to_bf16(ctx.serial(), wy.data(), rows * cols, want.data());
        kernels::multiply_rows_to_bf16(ctx.serial(), rows, cols, y.data(), cols, f.data(), cols, got.data(), cols, sums.data());
        EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << "aligned rows, cols " << cols;
        EXPECT_EQ(sums, ws);
        // The factor kept in bf16 (act'(h) of bf16 training): as on the factor widened.
        const auto f16 = bf16_bits(f);
        const auto fw = widen(f16);
        for (const int64_t ld : {cols, cols + 3}) {
          std::vector<uint16_t> fl(static_cast<size_t>(rows * ld));
          std::vector<float> fwl(fl.size());
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
              fl[static_cast<size_t>(r * ld + c)] = f16[static_cast<size_t>(r * cols + c)];
              fwl[static_cast<size_t>(r * ld + c)] = fw[static_cast<size_t>(r * cols + c)];
            }
          std::vector<float> ya = y0, yb = y0;
          std::vector<double> sa(static_cast<size_t>(cols), 0.25), sb(sa);
          kernels::AlignedVector<uint16_t> oa(want.size(), 1), ob(want.size(), 2);
          kernels::multiply_rows_to_bf16(ctx.serial(), rows, cols, ya.data(), cols, fwl.data(), ld, oa.data(), cols, sa.data());
          kernels::multiply_rows_to_bf16(ctx.serial(), rows, cols, yb.data(), cols, fl.data(), ld, ob.data(), cols, sb.data());
          EXPECT_TRUE(std::equal(oa.begin(), oa.end(), ob.begin())) << "bf16 factor, ld " << ld;
          EXPECT_EQ(sa, sb) << "bf16 factor sums, ld " << ld;
        }
      }
    }
}

TEST(BackwardKernels, UnpatchifyInvertsPatchify) {
  for (int64_t p : {2, 4}) {
    const int64_t N = 3, C = 5, H = 9, W = 7;  // odd sizes: the floor leaves a border no patch covers
    const auto x = randn(N * H * W * C, 90 + p);
    const int64_t K = p * p * C, rows = N * (H / p) * (W / p);
    std::vector<float> patches(static_cast<size_t>(rows * K)), back(x.size(), 7.0f);
    kernels::patchify_nhwc(kernels::default_context(), x.data(), N, H, W, C, p, patches.data());
    kernels::unpatchify_nhwc(kernels::default_context(), patches.data(), N, H, W, C, p, back.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j)
          for (int64_t c = 0; c < C; ++c) {
            const size_t idx = static_cast<size_t>(((n * H + i) * W + j) * C + c);
            const bool covered = i < (H / p) * p && j < (W / p) * p;
            ASSERT_EQ(back[idx], covered ? x[idx] : 0.0f);
          }
    kernels::patchify_nchw(kernels::default_context(), x.data(), N, C, H, W, p, patches.data());
    std::fill(back.begin(), back.end(), 7.0f);
    kernels::unpatchify_nchw(kernels::default_context(), patches.data(), N, C, H, W, p, back.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < H; ++i)
          for (int64_t j = 0; j < W; ++j) {
            const size_t idx = static_cast<size_t>(((n * C + c) * H + i) * W + j);
            const bool covered = i < (H / p) * p && j < (W / p) * p;
            ASSERT_EQ(back[idx], covered ? x[idx] : 0.0f);
          }
  }
}

TEST(BackwardKernels, LossGradientsMatchFiniteDifferences) {
  struct Case {
    std::string problem;
    Labels labels;
    int64_t L;
  };
  std::vector<Case> cases = {
      {"single_label_classification", Labels::classes({2, -100, 0}), 4},
      {"multi_label_classification", Labels::floats(Tensor({3, 4}, randn(12, 3, 0.4f, 0.5f))), 4},
      {"regression", Labels::floats(Tensor({3, 2}, randn(6, 4))), 2},
      {"", Labels::floats(Tensor({3}, randn(3, 5))), 1},  // num_labels 1 → regression
  };
  for (auto& c : cases) {
    Tensor logits({3, c.L}, randn(3 * c.L, 9, 2.0f));
    Tensor dl;
    std::string pt = c.problem;
    train::loss_and_grad(logits, c.labels, pt, dl);
    for (int64_t i = 0; i < logits.numel(); ++i) {
      auto loss = [&] {
        std::string p2 = c.problem;
        return static_cast<double>(classification_loss(logits, c.labels, p2));
      };
      EXPECT_NEAR(dl[i], numeric(loss, logits[i], 1e-2), 2e-3) << pt << " logit " << i;
    }
  }
}

TEST(BackwardKernels, DropPathRatesAreTorchLinspace) {
  ConvNextConfig c;
  c.depths = {3, 3, 9, 3};
  c.drop_path_rate = 0.1;
  const auto r = train::drop_path_rates(c);
  ASSERT_EQ(r.size(), 18u);
  EXPECT_EQ(r.front(), 0.0f);
  EXPECT_EQ(r.back(), 0.1f);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(r[i], 0.1 * static_cast<double>(i) / 17.0, 1e-8);
}

}  // namespace
}  // namespace convnext::test
