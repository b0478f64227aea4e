// Timing a model as `convnext bench` does: the median of N forward passes (or training steps)
// on random pixel_values after W warm-up runs, the throughput, and optionally where the time of
// a forward pass goes.
//
//   auto model = convnext::ConvNextForImageClassification::from_pretrained("dir");
//   convnext::BenchmarkResult r = convnext::benchmark_forward(model, {.batch = 8});
//   r.median_ms, r.images_per_s, r.gflops
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "convnext/config.h"
#include "convnext/export.h"
#include "convnext/model.h"

namespace convnext {

struct BenchmarkOptions {
  int64_t batch = 1;
  int64_t size = 224;     // pixel_values [batch, num_channels, size, size], N(0, 1), fixed seed
  int64_t iters = 10;     // timed runs
  int64_t warmup = 2;     // untimed runs first
  // Time each part of the pass or training step (BenchmarkResult::parts), and measure the
  // machine's fp32 peak (BenchmarkResult::peak_gflops) to compare with.
  bool profile = false;
  ExecutionContext context;  // threads, kernels and dtype of the runs (its profile is set by `profile`)
  std::function<void()> on_run;  // called after every run, warm-up included (progress)
};

struct PartTiming {
  // "embeddings", "stage1.blocks", "stage2.downsample", ..., "pooling", "head"; a training step
  // also has "loss", "backward.head", "backward.stage4.blocks", ..., "backward.embeddings",
  // "optimizer" (clipping, AdamW, zero_grad)
  std::string part;
  double median_ms = 0;
  double gflops = 0;  // 0 for parts without multiply-adds (pooling)
};

struct BenchmarkResult {
  std::string mode;  // "forward" or "train"
  int64_t batch = 0, size = 0;
  int threads = 0;
  std::string dtype;    // "f32" or "bf16"
  std::string kernels;  // the kernels that ran: "avx512", "portable", "avx512_bf16", ...
  double median_ms = 0, min_ms = 0;
  double images_per_s = 0;
  double gflops = 0;        // GFLOP/s; training counts 3× the forward's operations
  double peak_rss_mb = 0;   // of the whole process so far
  std::vector<PartTiming> parts;  // with BenchmarkOptions::profile
  // With profile: the fp32 GFLOP/s that independent FMAs reach on these threads, measured after
  // each timed run (outside its time) and given as the median, so that the limit the GEMMs are
  // measured against is sampled over the same stretch of time, under the same load, as the runs
  // (a single measurement at the end moved with the host's load: 332-432 GFLOP/s in three runs
  // of one build); 0 when not measured.
  double peak_gflops = 0;
};

// Times ConvNextForImageClassification::forward.
CONVNEXT_API BenchmarkResult benchmark_forward(const ConvNextForImageClassification& model, const BenchmarkOptions& options = {});
// Times full training steps of `model` as `convnext train` runs them (fp32, or bf16 mixed
// precision when the context's dtype, else the model's precision, is BF16): forward keeping
// activations, cross-entropy on random labels, backward, clipping (norm 1), AdamW (lr 1e-4),
// zero_grad. The model must have been created or loaded with inference_only = false; it is
// trained in place.
CONVNEXT_API BenchmarkResult benchmark_training(ConvNextForImageClassification& model, const BenchmarkOptions& options = {});

// Multiply-adds of one forward pass at H×W (convolutions and linear layers), and per part.
CONVNEXT_API double forward_macs(const ConvNextConfig& config, int64_t height, int64_t width);
CONVNEXT_API std::vector<std::pair<std::string, double>> forward_part_macs(const ConvNextConfig& config, int64_t height, int64_t width);

// The kernel family this process runs: "avx512" or "portable" (or "reference"), chosen at run
// time from the CPU; CONVNEXT_KERNELS=portable|reference in the environment forces one.
CONVNEXT_API std::string kernel_family();
// Whether bf16 GEMMs run natively (AVX512_BF16), rather than on the portable fallback.
CONVNEXT_API bool native_bf16();

}  // namespace convnext
