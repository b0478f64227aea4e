// Our pointwise GEMM (kernels::linear on weights packed once) against Debian's oneDNN 2.6 matmul, on
// ConvNeXt-T's pointwise shapes, fp32 and bf16, 2 threads: the measurement behind the README's
// "own GEMM" choice. Needs `apt-get install -y libdnnl-dev`; builds and runs with
//   bash bench/gemm_vs_onednn.sh
// Environment: THREADS (2), REPS_S (seconds per variant per shape, 0.3), MAX_OTHERS (0.05: a shape
// whose timing saw other processes take more cores than this is timed again after the machine has
// been quiet for 3 s), WAIT_S (900: the most it waits in all), NO_GELU (set: pw1 without the GELU
// epilogue on both sides, to see what the epilogue costs; not the model's computation).
//
// Per shape (stage s: M = batch·HW_s, HW = 3136, 784, 196, 49; C = 96, 192, 384, 768):
//   pw1: C[M,4C] = gelu_erf(A[M,C]·Wᵀ + b)      pw2: C[M,C] += A[M,4C]·Wᵀ + b   (residual)
// four variants, run interleaved (one call of each per round), median over rounds:
//   ours fp32    kernels::linear, pack_linear_scaled(..., bf16=false) done once
//   dnnl fp32    matmul, weights reordered once to its preferred (format_tag::any) layout, bias,
//                post-op eltwise_gelu_erf (pw1) or sum (pw2)
//   ours bf16    kernels::linear on bf16-packed weights (rounds A to bf16 inside the call)
//   dnnl bf16    matmul bf16 src/weights, f32 bias and dst, same post-ops; the f32→bf16 reorder of A
//                is inside the timed region, as ours converts A inside its call
// Outputs are checked against each other and against the double-precision reference.
// Stand-alone GEMMs: the model runs pw1+pw2 fused per tile of rows (hidden tile kept in L2), which
// this does not measure.
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "convnext/model.h"
#include "kernels/kernels.h"

using namespace convnext;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// max |a−b| / max |b|  (normalised to the output's scale) and max elementwise |a−b|/|b| over
// elements with |b| ≥ 1e-2·max|ref| (so values near zero do not dominate).
struct Diff {
  double norm = 0, elem = 0;
};
Diff compare(const std::vector<float>& a, const std::vector<float>& b) {
  double scale = 0;
  for (float x : b) scale = std::max(scale, (double)std::fabs(x));
  Diff d;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs((double)a[i] - (double)b[i]);
    d.norm = std::max(d.norm, e / scale);
    if (std::fabs(b[i]) >= 1e-2 * scale) d.elem = std::max(d.elem, e / std::fabs((double)b[i]));
  }
  return d;
}

// CPU seconds the whole machine was busy (including steal) and that this process used: their
// difference over a shape's timing, divided by its wall time, is how many cores others took.
double machine_busy_s() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  double v[8] = {0};
  f >> cpu;
  for (double& x : v) f >> x;
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK);
}
double self_cpu_s() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

struct Dnnl {
  dnnl::matmul prim;
  memory src, wei, bias, dst, src_f32;  // src is bf16 for the bf16 variant; src_f32 the user's A
  dnnl::reorder to_bf16;
  bool bf16 = false;
};

Dnnl make_dnnl(dnnl::engine& eng, dnnl::stream& s, int64_t M, int64_t N, int64_t K, bool pw1, bool gelu, bool bf16,
               float* A, const float* W, const float* b, float* C) {
  Dnnl d;
  d.bf16 = bf16;
  const dt in = bf16 ? dt::bf16 : dt::f32;
  memory::desc src_md({M, K}, in, tag::ab);
  memory::desc wei_any({K, N}, in, tag::any);
  memory::desc bias_md({1, N}, dt::f32, tag::ab);
  memory::desc dst_md({M, N}, dt::f32, tag::ab);
  dnnl::post_ops po;
  if (pw1 && gelu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
  if (!pw1) po.append_sum(1.f);
  dnnl::primitive_attr attr;
  if (po.len() > 0) attr.set_post_ops(po);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, bias_md, dst_md), attr, eng);
  d.prim = dnnl::matmul(pd);
  // W is nn.Linear's [N][K]: as the [K][N] matmul weight it is the transposed (ba) view.
  memory w_user({{K, N}, dt::f32, tag::ba}, eng, const_cast<float*>(W));
  d.wei = memory(pd.weights_desc(), eng);
  dnnl::reorder(w_user, d.wei).execute(s, w_user, d.wei);  // once, at "load"
  d.bias = memory(bias_md, eng, const_cast<float*>(b));
  d.dst = memory(dst_md, eng, C);
  d.src_f32 = memory({{M, K}, dt::f32, tag::ab}, eng, A);
  if (bf16) {
    d.src = memory(src_md, eng);
    d.to_bf16 = dnnl::reorder(d.src_f32, d.src);
  } else {
    d.src = d.src_f32;
  }
  s.wait();
  static bool said[2][2];
  if (!said[bf16][pw1]) {
    said[bf16][pw1] = true;
    std::printf("# oneDNN %s %s: impl %s\n", bf16 ? "bf16" : "fp32", pw1 ? "pw1" : "pw2", pd.impl_info_str());
  }
  return d;
}

void run_dnnl(Dnnl& d, dnnl::stream& s) {
  if (d.bf16) d.to_bf16.execute(s, d.src_f32, d.src);
  d.prim.execute(s, {{DNNL_ARG_SRC, d.src},
                     {DNNL_ARG_WEIGHTS, d.wei},
                     {DNNL_ARG_BIAS, d.bias},
                     {DNNL_ARG_DST, d.dst}});
  s.wait();
}

}  // namespace

int main() {
  const int threads = std::getenv("THREADS") ? std::atoi(std::getenv("THREADS")) : 2;
  const double reps_s = std::getenv("REPS_S") ? std::atof(std::getenv("REPS_S")) : 0.3;
  const double max_others = std::getenv("MAX_OTHERS") ? std::atof(std::getenv("MAX_OTHERS")) : 0.05;
  const double wait_s = std::getenv("WAIT_S") ? std::atof(std::getenv("WAIT_S")) : 900;
  double waited = 0;
  const bool gelu = !std::getenv("NO_GELU");  // diagnostic: pw1 without its GELU, on both sides
  set_num_threads(threads);   // our pool
  const kernels::Context kc = kernels::default_context();
  omp_set_num_threads(threads);  // oneDNN (Debian's is an OpenMP build)
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl_version_t* v = dnnl_version();
  if (!gelu) std::printf("# NO_GELU: pw1 rows are plain A·Wᵀ + b (diagnostic)\n");
  std::printf("# oneDNN %d.%d.%d, ISA 0x%x (0xe7 = avx512_core_bf16), OpenMP threads %d, our family %s, native bf16 %d\n",
              v->major, v->minor, v->patch, (int)dnnl::get_effective_cpu_isa(), omp_get_max_threads(),
              kernels::family_name(kc.family), (int)kernels::native_bf16(kc));

  const int64_t HW[4] = {3136, 784, 196, 49}, Cs[4] = {96, 192, 384, 768}, depth[4] = {3, 3, 9, 3};
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> U(-1.f, 1.f);

  std::printf("| batch | layer | M | N | K | ours fp32 | oneDNN fp32 | ours bf16 | oneDNN bf16 | tries×rounds |"
              " others' cores | fp32 ours~dnnl (elem) | fp32 vs ref ours / dnnl | bf16 ours~dnnl (elem) | bf16 vs ref ours / dnnl |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t batch : {1, 8}) {
    double total[4] = {0, 0, 0, 0}, flops_total = 0;
    for (int s = 0; s < 4; ++s) {
      for (int layer = 0; layer < 2; ++layer) {
        const bool pw1 = layer == 0;
        const int64_t M = batch * HW[s], C = Cs[s];
        const int64_t N = pw1 ? 4 * C : C, K = pw1 ? C : 4 * C;
        const Activation act = pw1 && gelu ? Activation::Gelu : Activation::Linear;
        const float ws = 1.f / std::sqrt((float)K);
        std::vector<float> A(M * K), W(N * K), b(N), C0(M * N);
        for (auto& x : A) x = U(rng);
        for (auto& x : W) x = U(rng) * ws * 1.7f;  // pre-activations of order 1
        for (auto& x : b) x = 0.1f * U(rng);
        for (auto& x : C0) x = U(rng);  // pw2: the residual
        const auto p32 = kernels::pack_linear_scaled(kc, W.data(), nullptr, nullptr, b.data(), N, K, false);
        const auto p16 = kernels::pack_linear_scaled(kc, W.data(), nullptr, nullptr, b.data(), N, K, true);
        std::vector<float> out[4];
        for (auto& o : out) o = C0;
        Dnnl d32 = make_dnnl(eng, strm, M, N, K, pw1, gelu, false, A.data(), W.data(), b.data(), out[1].data());
        Dnnl d16 = make_dnnl(eng, strm, M, N, K, pw1, gelu, true, A.data(), W.data(), b.data(), out[3].data());
        auto call = [&](int i) {
          switch (i) {
            case 0: kernels::linear(kc, M, A.data(), K, p32, out[0].data(), N, !pw1, act); break;
            case 1: run_dnnl(d32, strm); break;
            case 2: kernels::linear(kc, M, A.data(), K, p16, out[2].data(), N, !pw1, act); break;
            case 3: run_dnnl(d16, strm); break;
          }
        };
        // Correctness: one call each from the same C0, against each other and the double reference.
        for (int i = 0; i < 4; ++i) call(i);
        std::vector<float> ref = C0;
        kernels::reference::linear(M, N, K, A.data(), K, W.data(), b.data(), ref.data(), N, !pw1, act);
        const Diff f_od = compare(out[0], out[1]), f_or = compare(out[0], ref), f_dr = compare(out[1], ref);
        const Diff h_od = compare(out[2], out[3]), h_or = compare(out[2], ref), h_dr = compare(out[3], ref);
        // Timing: warm-up, then rounds of one call of each variant (pw2 keeps accumulating into its C).
        // When other processes took more than MAX_OTHERS cores meanwhile, wait and time the shape
        // again (until WAIT_S seconds of waiting in all are spent; the row then says it was disturbed).
        std::vector<double> t[4];
        int rounds = 0, tries = 0;
        double others = 0;
        for (;;) {
          ++tries;
          double t1[4];
          for (int i = 0; i < 4; ++i) {
            const double t0 = now_s();
            for (int r = 0; r < 3; ++r) call(i);
            t1[i] = (now_s() - t0) / 3;
          }
          const double est = *std::max_element(t1, t1 + 4);
          rounds = std::clamp((int)(reps_s / est), 15, 401) | 1;
          for (auto& v : t) v.clear();
          const double w0 = now_s(), m0 = machine_busy_s(), s0 = self_cpu_s();
          for (int r = 0; r < rounds; ++r)
            for (int i = 0; i < 4; ++i) {
              const double t0 = now_s();
              call(i);
              t[i].push_back(now_s() - t0);
            }
          others = ((machine_busy_s() - m0) - (self_cpu_s() - s0)) / (now_s() - w0);
          if (others <= max_others || waited >= wait_s) break;
          while (waited < wait_s) {  // until 3 s pass with the machine (nearly) idle
            const double q0 = now_s(), b0 = machine_busy_s();
            usleep(3000000);
            const double dt = now_s() - q0;
            waited += dt;
            if (machine_busy_s() - b0 <= 0.1 * dt) break;
          }
        }
        const double flops = 2.0 * M * N * K;
        double med[4];
        for (int i = 0; i < 4; ++i) {
          med[i] = median(t[i]);
          total[i] += depth[s] * med[i];
        }
        flops_total += depth[s] * flops;
        std::printf("| %lld | s%d pw%d | %lld | %lld | %lld | %.0f | %.0f | %.0f | %.0f | %d×%d | %.2f | %.1e (%.1e) | %.1e / %.1e |"
                    " %.1e (%.1e) | %.1e / %.1e |\n",
                    (long long)batch, s + 1, layer + 1, (long long)M, (long long)N, (long long)K, flops / med[0] / 1e9,
                    flops / med[1] / 1e9, flops / med[2] / 1e9, flops / med[3] / 1e9, tries, rounds, others, f_od.norm, f_od.elem,
                    f_or.norm, f_dr.norm, h_od.norm, h_od.elem, h_or.norm, h_dr.norm);
        std::fflush(stdout);
      }
    }
    std::printf("| %lld | **all pw, ConvNeXt-T (%.2f GFLOP)** | | | | **%.2f ms** (%.0f) | **%.2f ms** (%.0f) |"
                " **%.2f ms** (%.0f) | **%.2f ms** (%.0f) | | | | | | |\n",
                (long long)batch, flops_total / 1e9, total[0] * 1e3, flops_total / total[0] / 1e9, total[1] * 1e3,
                flops_total / total[1] / 1e9, total[2] * 1e3, flops_total / total[2] / 1e9, total[3] * 1e3,
                flops_total / total[3] / 1e9);
  }
  std::printf("# GFLOP/s per shape (2·M·N·K / median); totals = Σ depth_s · median(pw1 + pw2) over stages.\n");
  std::printf("# diff = max|a−b| / max|b| over the output (elem: max |a−b|/|b| where |b| ≥ 1%% of max|b|);"
              " ref = double-precision kernels::reference::linear.\n");
  std::printf("# others' cores = CPU the rest of the machine (and steal) used during that shape's timing:"
              " rows above MAX_OTHERS (%.2f) were disturbed; rerun. Waited %.0f s for quiet.\n", max_others, waited);
  return 0;
}
