// The six GEMMs of a ConvNeXt block's training step, one stage of ConvNeXt-T at batch 8 at a time,
// in fp32 and in bf16 (mixed precision), each timed alone with the caches flushed before every run
// (as in a step, where each GEMM's operands were written long before): pwconv1 with the GELU and
// its derivative (ActivationGradient), pwconv2, pwconv2's weight gradient, dh = dz·W2 with the
// act'(h) product and pwconv1's bias gradient in its tile epilogue, pwconv1's weight gradient and
// dt = dh·W1. bf16 as training runs it: act(h) and dh kept in bf16 between their GEMMs. Medians of
// 9 runs; `--warm` skips the flush. Built and run by bench/train_gemms.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "kernels/kernels.h"

using namespace convnext;
using namespace convnext::kernels;

namespace {

bool g_warm = false;

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Reads and writes 128 MiB, more than any cache here holds.
void flush() {
  static std::vector<char> junk(size_t{128} << 20);
  for (size_t i = 0; i < junk.size(); i += 64) junk[i] = static_cast<char>(junk[i] + 1);
}

template <class F>
double median_ms(F&& f) {
  std::vector<double> t;
  f();
  for (int i = 0; i < 9; ++i) {
    if (!g_warm) flush();
    const double a = now_ms();
    f();
    t.push_back(now_ms() - a);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

AlignedVector<float> randn(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.1f);
  AlignedVector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// One stage's block: M pixels, C channels; returns the sum of the six times.
double stage(const Context& ctx, int64_t M, int64_t C, bool bf16) {
  const int64_t C4 = 4 * C;
  const auto t = randn(M * C, 1), a = randn(M * C4, 2), dz = randn(M * C, 3), W1 = randn(C4 * C, 4), W2 = randn(C * C4, 5),
             b1 = randn(C4, 6), b2 = randn(C, 7);
  AlignedVector<float> h(static_cast<size_t>(M * C4)), dact(h.size()), dh(h.size()), z(static_cast<size_t>(M * C)),
      dt(z.size()), dW1(static_cast<size_t>(C4 * C)), dW2(dW1.size()), db1(static_cast<size_t>(C4));
  PackedLinear p1, p2, q1, q2;
  pack_linear_into(ctx, W1.data(), b1.data(), C4, C, p1, bf16);
  pack_linear_into(ctx, W2.data(), b2.data(), C, C4, p2, bf16);
  pack_kn_into(ctx, W1.data(), C, C4, C, q1, bf16);
  pack_kn_into(ctx, W2.data(), C4, C, C4, q2, bf16);
  const ActivationGradient grad{dact.data(), C4};
  TileColumnSums sums;
  const TileEpilogue epi = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    multiply_rows(ctx.serial(), m1 - m0, n1 - n0, dh.data() + m0 * C4 + n0, C4, dact.data() + m0 * C4 + n0, C4,
                  sums.tile(m0, n0, n1));
  };
  // bf16 as training runs it: act(h) and dh kept in bf16 (kernels.h, "maps kept in bf16").
  AlignedVector<uint16_t> a16(h.size()), dh16(h.size());
  round_to_bf16(ctx, a.data(), M * C4, a16.data());
  round_to_bf16(ctx, a.data(), M * C4, dh16.data());
  const TileConsumer keep = [&](const OutputTile& o) {
    multiply_rows_to_bf16(ctx.serial(), o.m1 - o.m0, o.n1 - o.n0, o.data, o.ld, dact.data() + o.m0 * C4 + o.n0, C4,
                          dh16.data() + o.m0 * C4 + o.n0, C4, sums.tile(o.m0, o.n0, o.n1));
  };
  const double ms[6] = {
      median_ms([&] {
        if (bf16) linear_bf16_out(ctx, M, t.data(), C, p1, a16.data(), C4, Activation::Gelu, grad);
        else linear(ctx, M, t.data(), C, p1, h.data(), C4, false, Activation::Gelu, nullptr, &grad);
      }),
      median_ms([&] {
        if (bf16) linear(ctx, M, a16.data(), C4, p2, z.data(), C, false, Activation::Linear);
        else linear(ctx, M, a.data(), C4, p2, z.data(), C, false, Activation::Linear);
      }),
      median_ms([&] {
        if (bf16) weight_gradient(ctx, M, dz.data(), C, C, a16.data(), C4, C4, dW2.data());
        else weight_gradient(ctx, M, dz.data(), C, C, a.data(), C4, C4, dW2.data());
      }),
      median_ms([&] {
        sums.reset(M, C4);
        if (bf16) linear_tiles(ctx, M, dz.data(), C, q2, keep);
        else linear(ctx, M, dz.data(), C, q2, dh.data(), C4, false, Activation::Linear, &epi);
        sums.finish(db1.data());
      }),
      median_ms([&] {
        if (bf16) weight_gradient(ctx, M, dh16.data(), C4, C4, t.data(), C, C, dW1.data());
        else weight_gradient(ctx, M, a.data(), C4, C4, t.data(), C, C, dW1.data());
      }),
      median_ms([&] {
        if (bf16) linear(ctx, M, dh16.data(), C4, q1, dt.data(), C, false, Activation::Linear);
        else linear(ctx, M, a.data(), C4, q1, dt.data(), C, false, Activation::Linear);
      }),
  };
  const double gflop = 2.0 * static_cast<double>(M * C * C4) / 1e6;  // per GEMM, divided by ms
  double total = 0;
  std::printf("%-5s M=%-6lld C=%-4lld", bf16 ? "bf16" : "fp32", static_cast<long long>(M), static_cast<long long>(C));
  for (const double m : ms) {
    std::printf(" %6.2f (%4.0f)", m, gflop / m);
    total += m;
  }
  std::printf(" | %6.2f ms\n", total);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--warm")) g_warm = true;
    else {
      std::printf("usage: train_gemms [--warm]\n");
      return std::strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  const Context ctx = default_context();
  const bool bf16 = native_bf16(ctx);
  std::printf("ConvNeXt-T batch 8, one block per stage, %d threads, %s caches; ms (GFLOP/s) of\n", ctx.threads,
              g_warm ? "warm" : "flushed");
  std::printf("%-24s %13s %13s %13s %13s %13s %13s\n", "", "pw1+act'", "pw2", "dW2", "dh+db1", "dW1", "dt");
  const int64_t shapes[4][2] = {{8 * 56 * 56, 96}, {8 * 28 * 28, 192}, {8 * 14 * 14, 384}, {8 * 7 * 7, 768}};
  const int blocks[4] = {3, 3, 9, 3};
  double f32 = 0, b16 = 0;
  for (int s = 0; s < 4; ++s) {
    const double a = stage(ctx, shapes[s][0], shapes[s][1], false);
    f32 += blocks[s] * a;
    if (bf16) {
      const double b = stage(ctx, shapes[s][0], shapes[s][1], true);
      b16 += blocks[s] * b;
      std::printf("%-24s bf16 %.2fx fp32\n", "", a / b);
    }
  }
  std::printf("a step's 18 blocks: fp32 %.0f ms", f32);
  if (bf16) std::printf(", bf16 %.0f ms (%.2fx)", b16, f32 / b16);
  std::printf("\n");
}
