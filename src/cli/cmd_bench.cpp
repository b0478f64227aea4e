// convnext bench: median forward time of a model, with random weights for --arch.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "args.h"
#include "commands.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext bench (--arch PRESET | --model DIR)
                      [--batch B] [--size S] [--threads T] [--dtype f32|bf16|int8] [--iters N] [--warmup W] [--json]
                      [--profile] [--train] [--kernels auto|avx512|portable]

Times ConvNextForImageClassification.forward on random pixel_values [B,3,S,S] (default 1, 224):
W warm-up runs (default 2), then N timed runs (default 10); reports the median. --arch uses
freshly initialised weights (1000 labels) of a preset, as `convnext init` names them (tiny ...
xlarge, atto ... nano, ConvNeXt V2's v2-atto ... v2-huge). With --json prints one line:
{"arch", "batch", "size", "threads", "dtype", "median_ms", "images_per_s", "gflops", "peak_rss_mb", ...}

--kernels picks the compute kernels (auto, the default: AVX-512 where the CPU has it, else the
portable C++ ones); "kernels" in the output names those that ran.

--profile also times the parts of each forward pass (embeddings, each stage's downsampling
layer and blocks, pooling, then the head and the rest) and prints their medians with the
GFLOP/s each part reaches; with --json they come as "profile": [{"part", "median_ms", "gflops"}].
After each timed run it also measures the fp32 peak of the threads (independent FMAs, about
20 ms, outside the run's time); "peak_gflops" is their median and, for fp32, each part's
share of it is given. With --train it times the parts of a training step: the forward
parts, "loss", the backward's ("backward.stage4.blocks", ...: twice the forward's operations),
"optimizer" (clipping, AdamW, zero_grad) and "other".

--train times full training steps instead: forward keeping activations, cross-entropy on random
labels, backward, gradient clipping, AdamW, zero_grad — what `convnext train` runs per step, in
fp32 or, with --dtype bf16, in bf16 mixed precision (`train --dtype bf16`). "gflops" then counts
3× the forward's operations (forward + two backward GEMMs).
)";

// Progress dots on stderr for the human-readable output.
BenchmarkOptions options_from(const Args& a, bool json) {
  BenchmarkOptions o;
  o.batch = a.get_int("batch", 1);
  o.size = a.get_int("size", 224);
  o.iters = a.get_int("iters", 10);
  o.warmup = a.get_int("warmup", 2);
  o.profile = a.has("profile");
  o.context.threads = a.threads();
  const std::string k = a.get("kernels", "auto");
  if (k == "avx512") o.context.kernels = KernelFamily::Avx512;
  else if (k == "portable") o.context.kernels = KernelFamily::Portable;
  else if (k != "auto") throw Error("--kernels must be auto, avx512 or portable, not '" + k + "'");
  if (o.batch < 1 || o.size < 1 || o.iters < 1 || o.warmup < 0) throw Error("--batch, --size and --iters must be >= 1");
  if (!json) o.on_run = [] { std::fputc('.', stderr); };
  return o;
}

nlohmann::json to_json(const BenchmarkResult& r, const std::string& arch) {
  nlohmann::json j = {{"arch", arch},           {"batch", r.batch},
                      {"size", r.size},         {"threads", r.threads},
                      {"dtype", r.dtype},       {"median_ms", r.median_ms},
                      {"min_ms", r.min_ms},     {"images_per_s", r.images_per_s},
                      {"gflops", r.gflops},     {"peak_rss_mb", r.peak_rss_mb},
                      {"kernels", r.kernels}};
  if (r.mode == "train") j["mode"] = "train";
  if (r.peak_gflops > 0) {
    j["peak_gflops"] = r.peak_gflops;
    if (r.dtype == "f32") j["share_of_peak"] = r.gflops / r.peak_gflops;
  }
  for (const PartTiming& p : r.parts) j["profile"].push_back({{"part", p.part}, {"median_ms", p.median_ms}, {"gflops", p.gflops}});
  return j;
}

void print_text(const BenchmarkResult& r, const std::string& arch) {
  if (r.mode == "train")
    std::printf("train %s batch %lld at %lld: median %.1f ms per step, %.2f images/s, %.1f GFLOP/s, peak RSS %.0f MB [%s, %d threads]\n",
                arch.c_str(), static_cast<long long>(r.batch), static_cast<long long>(r.size), r.median_ms, r.images_per_s,
                r.gflops, r.peak_rss_mb, r.kernels.c_str(), r.threads);
  else
    std::printf("%s batch %lld at %lld: median %.2f ms (min %.2f), %.1f images/s, %.1f GFLOP/s, peak RSS %.0f MB [%s, %d threads]\n",
                arch.c_str(), static_cast<long long>(r.batch), static_cast<long long>(r.size), r.median_ms, r.min_ms,
                r.images_per_s, r.gflops, r.peak_rss_mb, r.kernels.c_str(), r.threads);
  // The share of the fp32 peak means something for fp32 arithmetic only.
  const bool share = r.peak_gflops > 0 && r.dtype == "f32";
  if (r.peak_gflops > 0)
    std::printf("measured fp32 peak of these threads: %.0f GFLOP/s%s\n", r.peak_gflops,
                share ? (" (this run: " + std::to_string(static_cast<int>(100.0 * r.gflops / r.peak_gflops + 0.5)) + "%)").c_str() : "");
  if (!r.parts.empty()) std::printf("%-27s %10s %7s %9s%s\n", "part", "median ms", "share", "GFLOP/s", share ? "  of peak" : "");
  for (const PartTiming& p : r.parts) {
    std::printf("%-27s %10.3f %6.1f%% ", p.part.c_str(), p.median_ms, 100.0 * p.median_ms / r.median_ms);
    if (p.gflops > 0) std::printf("%9.0f", p.gflops);
    else std::printf("%9s", "-");
    if (share && p.gflops > 0) std::printf("  %6.0f%%", 100.0 * p.gflops / r.peak_gflops);
    std::printf("\n");
  }
}
}  // namespace

int cmd_bench(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json", "train", "profile"},
         {"arch", "model", "batch", "size", "threads", "dtype", "iters", "warmup", "kernels"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const bool json = a.has("json"), train = a.has("train");
  const BenchmarkOptions o = options_from(a, json);
  const Precision precision = a.dtype();
  if (train && precision == DType::I8) throw Error("--train runs in f32 or bf16 (int8 is for inference)");
  set_num_threads(a.threads());

  // Training keeps the original weights; inference, as a loaded checkpoint, only the packed ones.
  std::string arch = a.get("arch");
  std::optional<ConvNextForImageClassification> model;
  if (a.has("model")) {
    LoadOptions lo;
    lo.precision = precision;
    lo.inference_only = !train;
    model.emplace(ConvNextForImageClassification::from_pretrained(a.get("model"), lo));
    arch = model->config().variant_name().empty() ? "custom" : model->config().variant_name();
  } else {
    if (arch.empty()) throw Error("--arch or --model is required (see --help)");
    model.emplace(ConvNextConfig::preset(arch, 1000), 0, /*inference_only=*/!train, precision);
  }
  if (!json)
    std::fprintf(stderr, "bench %s%s batch %lld size %lld threads %d: ", train ? "train " : "", arch.c_str(),
                 static_cast<long long>(o.batch), static_cast<long long>(o.size), num_threads());
  const BenchmarkResult r = train ? benchmark_training(*model, o) : benchmark_forward(*model, o);
  if (json) {
    std::printf("%s\n", to_json(r, arch).dump().c_str());
  } else {
    std::fputc('\n', stderr);
    print_text(r, arch);
  }
  return 0;
}

}  // namespace convnext::cli
