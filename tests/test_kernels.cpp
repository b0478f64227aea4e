// Fast kernels (AVX-512 and portable) against the reference twins, on odd shapes:
// channels 1, 3, 13, 57 (and 96, 100 for the GEMM), images 1×1, 5×9, 57×61, batch 1 and 3.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>

#include "core/cpu.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace convnext::test {
namespace {

using kernels::PackedLinear;


// Each family through the dispatcher, as the model calls it, on 3 threads (an odd split).
struct Family {
  const char* name;
  kernels::Context ctx;
};

std::vector<Family> families() {
  std::vector<Family> f = {{"portable", {3, kernels::Family::Portable}}};
  if (cpu_has_avx512()) f.push_back({"avx512", {3, kernels::Family::Avx512}});
  return f;
}

TEST(Kernels, LinearMatchesReferenceOnOddShapes) {
  // (M, N, K) cover: remainders of the 12-row microkernel and of the 32-column panels, one
  // pixel, K over the 384 K-block, K = 1.
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},    {1, 3, 13},   {3, 13, 57},  {5, 57, 3},
                                                      {13, 33, 96}, {45, 100, 13}, {57, 61, 400}, {100, 96, 800},
                                                      {200, 129, 384}};
  for (const Family& fam : families())
    for (auto [M, N, K] : shapes)
      for (int mode = 0; mode < 3; ++mode) {  // plain, gelu epilogue, accumulate
        const Activation act = mode == 1 ? Activation::Gelu : Activation::Linear;
        const bool acc = mode == 2;
        const int64_t lda = K + 3, ldc = N + 5;  // row strides wider than the rows
        auto A = randn(M * lda, 1), W = randn(N * K, 2, 1.0f / std::sqrt(static_cast<float>(K))), b = randn(N, 3);
        auto C0 = randn(M * ldc, 4);
        std::vector<float> ours = C0, ref = C0;
        const PackedLinear P = kernels::pack_linear(kernels::default_context(), W.data(), b.data(), N, K);
        kernels::linear(fam.ctx, M, A.data(), lda, P, ours.data(), ldc, acc, act);
        kernels::reference::linear(M, N, K, A.data(), lda, W.data(), b.data(), ref.data(), ldc, acc, act);
        EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 2e-6)) << fam.name << " M=" << M << " N=" << N << " K=" << K
                                                                  << " mode " << mode;
      }
}

TEST(Kernels, LayerNormMatchesReference) {
  for (const Family& fam : families())
    for (int64_t C : {1, 3, 13, 57, 96, 100})
      for (int64_t rows : {1, 7, 45}) {
        auto x = randn(rows * C, 5, 3.0f), g = randn(C, 6), b = randn(C, 7);
        for (int64_t i = 0; i < rows * C; ++i) x[static_cast<size_t>(i)] += 10.0f;  // an offset: tests the two-pass variance
        std::vector<float> ours(x.size()), ref(x.size());
        kernels::layer_norm(fam.ctx, x.data(), rows, C, g.data(), b.data(), 1e-6f, ours.data());
        kernels::reference::layer_norm(x.data(), rows, C, g.data(), b.data(), 1e-6f, ref.data());
        EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 1e-5)) << fam.name << " C=" << C << " rows=" << rows;
        // In place, no affine.
        std::vector<float> inplace = x;
        kernels::layer_norm(fam.ctx, inplace.data(), rows, C, nullptr, nullptr, 1e-12f, inplace.data());
        kernels::reference::layer_norm(x.data(), rows, C, nullptr, nullptr, 1e-12f, ref.data());
        EXPECT_TRUE(close(as_tensor(inplace), as_tensor(ref), 1e-5)) << fam.name << " in place C=" << C;
      }
}

TEST(Kernels, DepthwiseConv7MatchesReference) {
  // W covers the blocking of the AVX-512 kernel (blocks of up to 14 outputs): 1, 5, 9, 11, 13, 14,
  // 15, 28 and 61 (= 13 + 4 × 12).
  const std::vector<std::array<int64_t, 4>> shapes = {{1, 1, 1, 1},  {1, 5, 9, 3},   {3, 5, 9, 13}, {1, 57, 61, 57},
                                                      {3, 1, 1, 57}, {1, 9, 5, 100}, {2, 2, 13, 1}, {1, 8, 11, 16},
                                                      {1, 14, 14, 33}, {2, 3, 28, 17}, {1, 4, 15, 48}};
  for (const Family& fam : families())
    for (auto [N, H, W, C] : shapes) {
      auto x = randn(N * H * W * C, 8), w = randn(C * 49, 9, 0.2f), b = randn(C, 10);
      std::vector<float> taps(static_cast<size_t>(49 * C));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < 49; ++t) taps[static_cast<size_t>(t * C + c)] = w[static_cast<size_t>(c * 49 + t)];
      std::vector<float> ours(x.size()), ref(x.size());
      kernels::dwconv7(fam.ctx, x.data(), N, H, W, C, taps.data(), b.data(), ours.data());
      kernels::reference::dwconv(x.data(), N, H, W, C, w.data(), 7, b.data(), ref.data());
      EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 1e-5)) << fam.name << " N=" << N << " H=" << H << " W=" << W
                                                                << " C=" << C;
    }
}

TEST(Kernels, ActivationsMatchReference) {
  const Activation all[] = {Activation::Gelu,  Activation::GeluTanh,  Activation::GeluFast, Activation::QuickGelu,
                            Activation::Gelu10, Activation::Relu,     Activation::Relu6,    Activation::Relu2,
                            Activation::LeakyRelu, Activation::Silu,  Activation::Selu,     Activation::Sigmoid,
                            Activation::Tanh,  Activation::Mish,      Activation::Linear};
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.01f) x.push_back(v);
  for (float v : {-100.0f, -30.0f, 0.0f, 1e-8f, -1e-8f, 30.0f, 100.0f}) x.push_back(v);
  for (const Family& fam : families())
    for (Activation act : all) {
      std::vector<float> ours = x, ref(x.size());
      kernels::activation(fam.ctx, act, ours.data(), static_cast<int64_t>(ours.size()));
      for (size_t i = 0; i < x.size(); ++i) ref[i] = static_cast<float>(kernels::reference::activation(act, x[i]));
      // Per element: |ours − ref| ≤ 1e-6 · max(1, |ref|), float32 accuracy of these functions.
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_LE(std::fabs(ours[i] - ref[i]), 1e-6 * std::max(1.0f, std::fabs(ref[i])))
            << fam.name << " activation " << static_cast<int>(act) << " at x = " << x[i];
    }
}

TEST(Kernels, GeluOfInfinityAndNaN) {
  // gelu(+inf) = +inf (not inf·0 = NaN), NaN stays NaN, large finite values are exact: every family.
  for (const Family& fam : families()) {
    std::vector<float> v = {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 1e30f,
                            -1e30f, 20.0f};
    kernels::activation(fam.ctx, Activation::Gelu, v.data(), static_cast<int64_t>(v.size()));
    EXPECT_EQ(v[0], std::numeric_limits<float>::infinity()) << fam.name;
    EXPECT_TRUE(std::isnan(v[1])) << fam.name;
    EXPECT_EQ(v[2], 1e30f) << fam.name;
    EXPECT_EQ(v[3], 0.0f) << fam.name;
    EXPECT_EQ(v[4], 20.0f) << fam.name;
  }
}

TEST(Kernels, GeluIsTheExactErfForm) {
  // gelu(1) = 0.8413447460685429 (erf form); the tanh form gives 0.8411919906082768.
  float v = 1.0f;
  kernels::activation(kernels::default_context(), Activation::Gelu, &v, 1);
  EXPECT_NEAR(v, 0.8413447460685429, 2e-7);
  float t = 1.0f;
  kernels::activation(kernels::default_context(), Activation::GeluTanh, &t, 1);
  EXPECT_NEAR(t, 0.8411919906082768, 2e-7);
}

TEST(Kernels, PatchConvolutionAsGemmMatchesDirectConvolution) {
  // The stem and downsampling layers: patch gathering + packed GEMM = a stride-p convolution.
  for (int64_t p : {1, 2, 4, 8})
    for (auto [N, C, H, W, O] : std::vector<std::array<int64_t, 5>>{{1, 1, 8, 8, 3}, {3, 3, 17, 9, 13}, {2, 5, 9, 23, 57}}) {
      if (H < p || W < p) continue;
      auto x = randn(N * C * H * W, 11), w = randn(O * C * p * p, 12), b = randn(O, 13);
      const int64_t Ho = H / p, Wo = W / p, K = p * p * C;
      std::vector<float> patches(static_cast<size_t>(N * Ho * Wo * K)), y(static_cast<size_t>(N * Ho * Wo * O));
      kernels::patchify_nchw(kernels::default_context(), x.data(), N, C, H, W, p, patches.data());
      const auto wl = kernels::conv_weight_to_patch_linear(w.data(), O, C, p);
      const auto P = kernels::pack_linear(kernels::default_context(), wl.data(), b.data(), O, K);
      kernels::linear(kernels::default_context(), N * Ho * Wo, patches.data(), K, P, y.data(), O, false, Activation::Linear);
      std::vector<float> ours(y.size()), ref(y.size());
      kernels::nhwc_to_nchw(kernels::default_context(), y.data(), N, Ho, Wo, O, ours.data());
      kernels::reference::patch_conv_nchw(x.data(), N, C, H, W, w.data(), b.data(), O, p, ref.data());
      EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 1e-5)) << "p=" << p << " C=" << C << " H=" << H << " W=" << W;

      // The NHWC gatherer (used by the downsampling layers) gives the same patches.
      std::vector<float> nhwc(x.size()), patches2(patches.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t q = 0; q < H * W; ++q) nhwc[static_cast<size_t>((n * H * W + q) * C + c)] = x[static_cast<size_t>((n * C + c) * H * W + q)];
      kernels::patchify_nhwc(kernels::default_context(), nhwc.data(), N, H, W, C, p, patches2.data());
      EXPECT_EQ(patches, patches2);
    }
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

TEST(Kernels, DepthwiseConvWithLayerNormMatchesReference) {
  const std::vector<std::array<int64_t, 4>> shapes = {{1, 1, 1, 1}, {1, 5, 9, 3}, {3, 5, 9, 13}, {1, 57, 61, 57}, {2, 7, 7, 100}};
  for (const Family& fam : families()) {
    for (auto [N, H, W, C] : shapes) {
      auto x = randn(N * H * W * C, 21), w = randn(C * 49, 22, 0.2f), b = randn(C, 23);
      std::vector<float> taps(static_cast<size_t>(49 * C));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < 49; ++t) taps[static_cast<size_t>(t * C + c)] = w[static_cast<size_t>(c * 49 + t)];
      std::vector<float> ours(x.size()), ref(x.size());
      kernels::dwconv7_ln(fam.ctx, x.data(), N, H, W, C, taps.data(), b.data(), 1e-6f, ours.data());
      kernels::reference::dwconv(x.data(), N, H, W, C, w.data(), 7, b.data(), ref.data());
      kernels::reference::layer_norm(ref.data(), N * H * W, C, nullptr, nullptr, 1e-6f, ref.data());
      EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 2e-5)) << fam.name << " N=" << N
                                                                << " H=" << H << " W=" << W << " C=" << C;
    }
  }
}

TEST(Kernels, DepthwiseConvRowsEqualTheWholeMapsRows) {
  // dwconv7_ln_rows (the fused block's per-tile call) gives exactly the rows the whole-map kernel
  // gives, for ranges that start and end inside an image, span two images, or cover one row.
  const std::vector<std::array<int64_t, 4>> shapes = {{1, 5, 9, 3}, {3, 5, 9, 13}, {2, 7, 7, 100}, {1, 57, 61, 57}};
  for (const Family& fam : families()) {
    for (auto [N, H, W, C] : shapes) {
      auto x = randn(N * H * W * C, 31), taps = randn(C * 49, 32, 0.2f), b = randn(C, 33);
      std::vector<float> full(x.size());
      kernels::dwconv7_ln(fam.ctx, x.data(), N, H, W, C, taps.data(), b.data(), 1e-6f, full.data());
      const int64_t NH = N * H;
      for (auto [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, NH}, {0, 1}, {NH - 1, NH}, {1, std::min<int64_t>(NH, H + 2)}, {NH / 2, NH}}) {
        if (r0 >= r1) continue;
        std::vector<float> part(static_cast<size_t>((r1 - r0) * W * C));
        kernels::dwconv7_ln_rows(fam.ctx.serial(), x.data(), N, H, W, C, taps.data(), b.data(), 1e-6f, r0, r1, part.data());
        EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin() + r0 * W * C))
            << fam.name << " N=" << N << " H=" << H << " W=" << W << " C=" << C << " rows " << r0 << ".." << r1;
      }
    }
  }
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

float round_bf16(float v) { return io::bf16_to_f32(io::f32_to_bf16(v)); }

TEST(Kernels, Bf16LinearMatchesReferenceOnRoundedOperands) {
  // Both bf16 kernels must equal the double-precision product of the bf16-rounded operands up to
  // fp32 accumulation error: the only approximation is the rounding to bf16 itself.
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},   {1, 3, 13},   {3, 13, 57},   {5, 57, 3},
                                                      {13, 33, 96}, {45, 100, 13}, {57, 61, 777}, {100, 96, 800}};
  for (const Family& fam : families()) {
    if (fam.ctx.family == kernels::Family::Avx512 && !kernels::native_bf16(fam.ctx)) continue;
    for (auto [M, N, K] : shapes)
      for (int mode = 0; mode < 3; ++mode) {
        const Activation act = mode == 1 ? Activation::Gelu : Activation::Linear;
        const bool acc = mode == 2;
        const int64_t lda = K + 3, ldc = N + 5;
        auto A = randn(M * lda, 31), W = randn(N * K, 32, 1.0f / std::sqrt(static_cast<float>(K))), b = randn(N, 33);
        auto C0 = randn(M * ldc, 34);
        std::vector<float> ours = C0, ref = C0, Ar = A, Wr = W;
        for (float& v : Ar) v = round_bf16(v);
        for (float& v : Wr) v = round_bf16(v);
        const auto P = kernels::pack_linear_scaled(kernels::default_context(), W.data(), nullptr, nullptr, b.data(), N, K, /*bf16=*/true);
        kernels::linear(fam.ctx, M, A.data(), lda, P, ours.data(), ldc, acc, act);
        kernels::reference::linear(M, N, K, Ar.data(), lda, Wr.data(), b.data(), ref.data(), ldc, acc, act);
        EXPECT_TRUE(close(as_tensor(ours), as_tensor(ref), 2e-6)) << fam.name << "_bf16 M=" << M
                                                                  << " N=" << N << " K=" << K << " mode " << mode;
      }
  }
}

}  // namespace
}  // namespace convnext::test

namespace convnext::test {
namespace {

TEST(Kernels, TileEpilogueSeesEachFinishedBlockOnce) {
  // linear(..., after): the blocks handed to `after` cover C exactly once and hold their final
  // values when handed over, for every weight form (fp32, bf16, int8) and family; the training
  // pass relies on it to activate pwconv1's output (and its gradient) tile by tile.
  for (const Family& fam : families())
    for (int form = 0; form < 3; ++form)
      for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {13, 33, 96}, {200, 129, 384}, {300, 1000, 40}}) {
        SCOPED_TRACE(std::string(fam.name) + " form " + std::to_string(form) + " M=" + std::to_string(M) + " N=" +
                     std::to_string(N) + " K=" + std::to_string(K));
        const auto A = randn(M * K, 41), W = randn(N * K, 42, 0.1f), b = randn(N, 43);
        const kernels::Context any = kernels::default_context();
        const kernels::PackedLinear P = form == 0   ? kernels::pack_linear(any, W.data(), b.data(), N, K)
                                        : form == 1 ? kernels::pack_linear_scaled(any, W.data(), nullptr, nullptr, b.data(), N, K, true)
                                                    : kernels::pack_linear_int8(any, W.data(), nullptr, nullptr, b.data(), N, K);
        std::vector<float> want(static_cast<size_t>(M * N)), C(want.size(), NAN), seen(want.size(), NAN);
        kernels::linear(fam.ctx, M, A.data(), K, P, want.data(), N, false, Activation::Gelu);
        std::vector<int> hits(want.size(), 0);
        std::mutex mu;
        const kernels::TileEpilogue after = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
          std::lock_guard<std::mutex> lock(mu);
          for (int64_t m = m0; m < m1; ++m)
            for (int64_t n = n0; n < n1; ++n) {
              ++hits[static_cast<size_t>(m * N + n)];
              seen[static_cast<size_t>(m * N + n)] = C[static_cast<size_t>(m * N + n)];
            }
        };
        kernels::linear(fam.ctx, M, A.data(), K, P, C.data(), N, false, Activation::Gelu, &after);
        EXPECT_TRUE(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
        EXPECT_EQ(seen, want);
      }
}

}  // namespace
}  // namespace convnext::test
