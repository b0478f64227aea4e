// How close the pointwise GEMMs come to the core's own limit, on one thread: fp32, int8 and bf16
// (kernels::linear on weights packed once) on ConvNeXt-T's pointwise shapes at batch 8, each
// against the rate of its instruction measured in registers in the same run (12 independent
// chains of vfmadd231ps / vpdpbusd / vdpbf16ps). Builds and runs with
//   bash bench/gemm_rate.sh
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "kernels/kernels.h"

using namespace convnext;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// 12 independent accumulators (zmm0-11) updated n times by `insn` (written out in assembly: a
// compiler may fold n integer additions into one multiplication).
#define TWELVE(insn) \
  insn " %%zmm12, %%zmm13, %%zmm0\n\t" insn " %%zmm12, %%zmm13, %%zmm1\n\t" insn " %%zmm12, %%zmm13, %%zmm2\n\t"   \
  insn " %%zmm12, %%zmm13, %%zmm3\n\t" insn " %%zmm12, %%zmm13, %%zmm4\n\t" insn " %%zmm12, %%zmm13, %%zmm5\n\t"   \
  insn " %%zmm12, %%zmm13, %%zmm6\n\t" insn " %%zmm12, %%zmm13, %%zmm7\n\t" insn " %%zmm12, %%zmm13, %%zmm8\n\t"   \
  insn " %%zmm12, %%zmm13, %%zmm9\n\t" insn " %%zmm12, %%zmm13, %%zmm10\n\t" insn " %%zmm12, %%zmm13, %%zmm11\n\t"
#define RATE(name, insn, macs_per_insn)                                                                        \
  __attribute__((target("avx512f,fma,avx512vnni,avx512bf16"))) double name() {                                         \
    const long n = 100'000'000;                                                                              \
    const auto t0 = Clock::now();                                                                            \
    asm volatile("vpxord %%zmm12, %%zmm12, %%zmm12\n\tvpxord %%zmm13, %%zmm13, %%zmm13\n\t"                 \
                 "mov %0, %%rcx\n1:\n\t" TWELVE(insn) "dec %%rcx\n\tjnz 1b"                                  \
                 :                                                                                           \
                 : "r"(n)                                                                                    \
                 : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",     \
                   "xmm10", "xmm11", "xmm12", "xmm13", "cc");                                                 \
    return n * 12.0 * (macs_per_insn) / seconds_since(t0) / 1e9;                                             \
  }
RATE(fma_gmacs, "vfmadd231ps", 16)
RATE(vnni_gmacs, "vpdpbusd", 64)
RATE(bf16_gmacs, "vdpbf16ps", 32)

// Median GMAC/s of kernels::linear over `reps` calls.
double gemm_gmacs(const kernels::Context& ctx, const kernels::PackedLinear& P, const std::vector<float>& A, int64_t M,
                  Activation act, bool acc, std::vector<float>& C) {
  std::vector<double> t;
  for (int r = 0; r < 9; ++r) {
    const auto t0 = Clock::now();
    kernels::linear(ctx, M, A.data(), P.K, P, C.data(), P.N, acc, act);
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return static_cast<double>(M) * P.N * P.K / t[t.size() / 2] / 1e9;
}
}  // namespace

int main() {
  if (!cpu_has_avx512()) return std::puts("needs AVX-512"), 0;
  const bool vnni = cpu_has_avx512_vnni();
  const kernels::Context ctx{1, kernels::Family::Avx512};
  const bool bf16 = cpu_has_avx512_bf16();
  const double fma = fma_gmacs(), dp = vnni ? vnni_gmacs() : 0, bh = bf16 ? bf16_gmacs() : 0;
  std::printf("one thread, in registers: vfmadd231ps %.0f GMAC/s (%.0f GFLOP/s)", fma, 2 * fma);
  if (vnni) std::printf(", vpdpbusd %.0f GMAC/s", dp);
  if (bf16) std::printf(", vdpbf16ps %.0f GMAC/s", bh);
  std::printf("\n\n| GEMM (ConvNeXt-T, batch 8) | M | N | K | fp32 GMAC/s | of FMA rate | int8 GMAC/s | of vpdpbusd rate | bf16 GMAC/s | of vdpbf16ps rate |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  const int64_t C[4] = {96, 192, 384, 768}, HW[4] = {3136, 784, 196, 49};
  for (int s = 0; s < 4; ++s)
    for (int layer = 0; layer < 2; ++layer) {
      const int64_t M = 8 * HW[s], N = layer ? C[s] : 4 * C[s], K = layer ? 4 * C[s] : C[s];
      std::vector<float> A(static_cast<size_t>(M * K)), W(static_cast<size_t>(N * K)), b(static_cast<size_t>(N)),
          out(static_cast<size_t>(M * N));
      for (float& v : A) v = d(rng);
      for (float& v : W) v = 0.05f * d(rng);
      for (float& v : b) v = d(rng);
      const Activation act = layer ? Activation::Linear : Activation::Gelu;
      const auto P32 = kernels::pack_linear(ctx, W.data(), b.data(), N, K);
      const double g32 = gemm_gmacs(ctx, P32, A, M, act, layer == 1, out);
      double g8 = 0;
      if (vnni) g8 = gemm_gmacs(ctx, kernels::pack_linear_int8(ctx, W.data(), nullptr, nullptr, b.data(), N, K), A, M, act, layer == 1, out);
      double g16 = 0;
      if (bf16) g16 = gemm_gmacs(ctx, kernels::pack_linear_scaled(ctx, W.data(), nullptr, nullptr, b.data(), N, K, true), A, M, act, layer == 1, out);
      std::printf("| stage %d %s | %lld | %lld | %lld | %.0f | %.0f%% | %.0f | %.0f%% | %.0f | %.0f%% |\n", s + 1,
                  layer ? "pw2" : "pw1 + GELU", static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K), g32,
                  100 * g32 / fma, g8, vnni ? 100 * g8 / dp : 0.0, g16, bf16 ? 100 * g16 / bh : 0.0);
    }

  // The weight gradients of training, dW[N][K] += dYᵀ·X over the M pixels (kernels::weight_gradient,
  // as the training pass runs them): pwconv1's (N = 4C, K = C) and pwconv2's (N = C, K = 4C).
  std::printf("\n| weight gradient (ConvNeXt-T, batch 8) | out rows | out cols | sum over M | fp32 GMAC/s | of FMA rate | bf16 GMAC/s | of vdpbf16ps rate |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (int s = 0; s < 4; ++s)
    for (int layer = 0; layer < 2; ++layer) {
      const int64_t M = 8 * HW[s], N = layer ? C[s] : 4 * C[s], K = layer ? 4 * C[s] : C[s];
      std::vector<float> dy(static_cast<size_t>(M * N)), x(static_cast<size_t>(M * K)), dw(static_cast<size_t>(N * K));
      for (float& v : dy) v = d(rng);
      for (float& v : x) v = d(rng);
      const auto rate = [&](bool b16) {
        std::vector<double> t;
        for (int r = 0; r < 5; ++r) {
          const auto t0 = Clock::now();
          kernels::weight_gradient(ctx, M, dy.data(), N, N, x.data(), K, K, dw.data(), b16);
          t.push_back(seconds_since(t0));
        }
        std::sort(t.begin(), t.end());
        return static_cast<double>(M) * N * K / t[t.size() / 2] / 1e9;
      };
      const double g32 = rate(false), g16 = bf16 ? rate(true) : 0;
      std::printf("| stage %d %s | %lld | %lld | %lld | %.0f | %.0f%% | %.0f | %.0f%% |\n", s + 1, layer ? "dW2" : "dW1",
                  static_cast<long long>(N), static_cast<long long>(K), static_cast<long long>(M), g32, 100 * g32 / fma, g16,
                  bf16 ? 100 * g16 / bh : 0.0);
    }
}
