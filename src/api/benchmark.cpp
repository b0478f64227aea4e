// benchmark_forward / benchmark_training (include/convnext/benchmark.h): the timing loop of
// `convnext bench`, for any program that wants the same figures.
#include "convnext/benchmark.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "api/access.h"
#include "convnext/error.h"
#include "core/parallel.h"
#include "kernels/kernels.h"
#include "model/plan.h"
#include "train/backprop.h"
#include "train/optimizer.h"

namespace convnext {

namespace {

// pixel_values [B, C, S, S] drawn from N(0, 1) with a fixed seed.
Tensor random_pixels(int64_t batch, int64_t channels, int64_t size) {
  Tensor px({batch, channels, size, size});
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  for (int64_t i = 0; i < px.numel(); ++i) px[i] = dist(rng);
  return px;
}

double median_of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void check(const BenchmarkOptions& o) {
  if (o.batch < 1 || o.size < 1 || o.iters < 1 || o.warmup < 0)
    throw Error("benchmark: batch, size and iters must be >= 1 and warmup >= 0");
}

// The fields every result has, from the timed runs.
BenchmarkResult summarise(const char* mode, const BenchmarkOptions& o, const std::vector<double>& ms, double gflop) {
  BenchmarkResult r;
  r.mode = mode;
  r.batch = o.batch;
  r.size = o.size;
  r.threads = detail::resolve(o.context).kernels.threads;
  r.median_ms = median_of(ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.images_per_s = 1000.0 * static_cast<double>(o.batch) / r.median_ms;
  r.gflops = gflop / (r.median_ms / 1000.0);
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// One run's parts into part_ms (one list of times per part), and last what the run spent outside them.
void record_parts(const ForwardProfile& profile, double run_ms, std::vector<std::vector<double>>& part_ms) {
  part_ms.resize(profile.ms.size() + 1);
  double parts = 0;
  for (size_t p = 0; p < profile.ms.size(); ++p) {
    part_ms[p].push_back(profile.ms[p]);
    parts += profile.ms[p];
  }
  part_ms.back().push_back(run_ms - parts);
}

// The profile's rows: each recorded part's median, then `rest` (what the pass spent outside the
// recorded parts: the forward's head, a training step's "other"), with GFLOP/s from the part's
// multiply-adds.
std::vector<PartTiming> part_rows(const ConvNextConfig& cfg, const BenchmarkOptions& o, const std::vector<std::string>& names,
                                  const std::vector<std::vector<double>>& part_ms, const char* rest) {
  const auto macs = forward_part_macs(cfg, o.size, o.size);
  std::vector<PartTiming> rows;
  for (size_t p = 0; p < part_ms.size(); ++p) {
    PartTiming t;
    t.part = p < names.size() ? names[p] : rest;
    t.median_ms = median_of(part_ms[p]);
    // A backward part does twice its forward's multiply-adds (the input's and the weights' gradients).
    const bool backward = t.part.rfind("backward.", 0) == 0;
    const std::string forward_part = backward ? t.part.substr(9) : t.part;
    for (const auto& [part, m] : macs)
      if (part == forward_part && t.median_ms > 0)
        t.gflops = (backward ? 2.0 : 1.0) * 2.0 * m * static_cast<double>(o.batch) / 1e9 / (t.median_ms / 1000.0);
    rows.push_back(t);
  }
  return rows;
}

}  // namespace

std::vector<std::pair<std::string, double>> forward_part_macs(const ConvNextConfig& c, int64_t H, int64_t W) {
  const auto& hs = c.hidden_sizes;
  int64_t h = H / c.patch_size, w = W / c.patch_size;
  std::vector<std::pair<std::string, double>> parts;
  parts.emplace_back("embeddings", static_cast<double>(h * w) * hs[0] * c.num_channels * c.patch_size * c.patch_size);
  for (int64_t s = 0; s < c.num_stages; ++s) {
    const double C = static_cast<double>(hs[static_cast<size_t>(s)]);
    const std::string stage = "stage" + std::to_string(s + 1) + ".";
    if (s > 0) {
      h /= 2;
      w /= 2;
      parts.emplace_back(stage + "downsample",
                         static_cast<double>(h * w) * C * static_cast<double>(hs[static_cast<size_t>(s - 1)]) * 4);
    }
    parts.emplace_back(stage + "blocks", static_cast<double>(c.depths[static_cast<size_t>(s)]) *
                                             static_cast<double>(h * w) * (49 * C + 8 * C * C));
  }
  parts.emplace_back("pooling", 0.0);
  parts.emplace_back("head", static_cast<double>(hs[static_cast<size_t>(c.num_stages - 1)]) *
                                 static_cast<double>(c.num_labels()));
  return parts;
}

double forward_macs(const ConvNextConfig& c, int64_t H, int64_t W) {
  double macs = 0;
  for (const auto& [part, m] : forward_part_macs(c, H, W)) macs += m;
  return macs;
}

std::string kernel_family() { return kernel_family_name(); }
bool native_bf16() { return kernels::native_bf16(kernels::default_context()); }

BenchmarkResult benchmark_forward(const ConvNextForImageClassification& model, const BenchmarkOptions& o) {
  check(o);
  const ConvNextConfig& cfg = model.config();
  const Tensor px = random_pixels(o.batch, cfg.num_channels, o.size);
  for (int64_t i = 0; i < o.warmup; ++i) {
    model.forward(px, nullptr, false, o.context);
    if (o.on_run) o.on_run();
  }
  ForwardProfile profile;
  ExecutionContext ctx = o.context;
  if (o.profile) ctx.profile = &profile;
  const kernels::Context kc = detail::resolve(o.context).kernels;
  std::vector<std::vector<double>> part_ms;
  std::vector<double> ms, peaks;  // peaks: the fp32 peak measured after each timed run (profile)
  for (int64_t i = 0; i < o.iters; ++i) {
    const auto t0 = Clock::now();
    model.forward(px, nullptr, false, ctx);
    ms.push_back(ms_since(t0));
    if (o.profile) {
      record_parts(profile, ms.back(), part_ms);
      peaks.push_back(kernels::fp32_peak_gflops(kc));
    }
    if (o.on_run) o.on_run();
  }
  BenchmarkResult r = summarise("forward", o, ms, 2.0 * forward_macs(cfg, o.size, o.size) * static_cast<double>(o.batch) / 1e9);
  const DType dtype = o.context.dtype.value_or(model.precision());
  r.dtype = dtype_short_name(dtype);
  r.kernels = dtype == DType::BF16  ? (kernels::native_bf16(kc) ? "avx512_bf16" : "portable_bf16")
              : dtype == DType::I8 ? (kernels::native_int8(kc) ? "avx512_vnni" : "portable_int8")
                                   : kernels::family_name(kc.family);
  if (o.profile) {
    r.parts = part_rows(cfg, o, profile.parts, part_ms, "head");
    r.peak_gflops = median_of(peaks);
  }
  return r;
}

BenchmarkResult benchmark_training(ConvNextForImageClassification& model, const BenchmarkOptions& o) {
  check(o);
  detail::ModelState& state = detail::Access::state(model);
  detail::Parameters& params = state.params();
  if (params.released)
    throw Error("benchmark_training: the model was loaded for inference only; load it with inference_only = false");
  const DType dtype = o.context.dtype.value_or(model.precision());
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw Error(std::string("benchmark_training: training runs in f32 or bf16 (mixed precision), not ") + dtype_short_name(dtype));
  const ConvNextConfig& cfg = params.config;
  const kernels::Context kc = detail::resolve(o.context).kernels;
  const Tensor px = random_pixels(o.batch, cfg.num_channels, o.size);
  std::mt19937 rng(1);
  std::vector<int64_t> ids;
  const auto labels_n = static_cast<uint32_t>(std::max<int64_t>(1, cfg.num_labels()));
  for (int64_t n = 0; n < o.batch; ++n) ids.push_back(static_cast<int64_t>(rng() % labels_n));
  const Labels labels = Labels::classes(ids);
  train::Gradients grads(params);
  train::AdamWOptions ao;
  ao.lr = 1e-4;
  train::AdamW opt(grads, ao, kc);
  train::TrainGraph graph(params, kc, dtype);
  ForwardProfile profile;
  train::StepOptions so;
  if (o.profile) so.profile = &profile;
  std::vector<std::vector<double>> part_ms;
  std::vector<double> ms, peaks;  // peaks: the fp32 peak measured after each timed step (profile)
  for (int64_t i = 0; i < o.warmup + o.iters; ++i) {
    const auto t0 = Clock::now();
    graph.forward_backward(px, labels, grads, so);
    const auto t1 = Clock::now();
    const double norm = grads.global_norm();  // clipping, AdamW and zero_grad as the trainer runs them
    opt.step(grads, ao.lr, train::clip_coefficient(norm, 1.0), /*zero_grads=*/true);
    if (i >= o.warmup) ms.push_back(ms_since(t0));
    if (i >= o.warmup && o.profile) {  // the step's parts, then the optimizer's, then what is left
      profile.parts.emplace_back("optimizer");
      profile.ms.push_back(ms_since(t1));
      record_parts(profile, ms.back(), part_ms);
      peaks.push_back(kernels::fp32_peak_gflops(kc));
    }
    if (o.on_run) o.on_run();
  }
  state.repack();  // the inference plans follow the trained parameters
  BenchmarkResult r =
      summarise("train", o, ms, 3 * 2.0 * forward_macs(cfg, o.size, o.size) * static_cast<double>(o.batch) / 1e9);
  r.dtype = dtype_short_name(dtype);
  r.kernels = dtype == DType::BF16 ? (kernels::native_bf16(kc) ? "avx512_bf16" : "portable_bf16") : kernels::family_name(kc.family);
  if (o.profile) {
    r.parts = part_rows(cfg, o, profile.parts, part_ms, "other");  // outside every timed part: timer calls
    r.peak_gflops = median_of(peaks);
  }
  return r;
}

}  // namespace convnext
