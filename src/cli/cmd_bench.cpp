// convnext bench: median forward time of a model, with random weights for --arch.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "convnext/convnext.h"
#include "kernels/kernels.h"
#include "model/network.h"
#include "train/backprop.h"
#include "train/optimizer.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext bench (--arch tiny|small|base|large|xlarge | --model DIR)
                      [--batch B] [--size S] [--threads T] [--dtype f32|bf16] [--iters N] [--warmup W] [--json]
                      [--profile] [--train]

Times ConvNextForImageClassification.forward on random pixel_values [B,3,S,S] (default 1, 224):
W warm-up runs (default 2), then N timed runs (default 10); reports the median. --arch uses
freshly initialised weights (1000 labels). With --json prints one line:
{"arch", "batch", "size", "threads", "dtype", "median_ms", "images_per_s", "gflops", "peak_rss_mb", ...}

--profile also times the parts of each forward pass (embeddings, each stage's downsampling
layer and blocks, pooling, then the head and the rest) and prints their medians with the
GFLOP/s each part reaches; with --json they come as "profile": [{"part", "median_ms", "gflops"}].

--train times full training steps instead (fp32): forward keeping activations, cross-entropy on
random labels, backward, gradient clipping, AdamW, zero_grad — what `convnext train` runs per
step. "gflops" then counts 3× the forward's operations (forward + two backward GEMMs).
)";

// Multiply-adds of the parts of one forward pass (convolutions and linear layers), named as
// Network::ForwardProfile names them; the head is "head".
std::vector<std::pair<std::string, double>> part_macs(const ConvNextConfig& c, int64_t H, int64_t W) {
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
  for (const auto& [part, m] : part_macs(c, H, W)) macs += m;
  return macs;
}

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

// One training step per iteration, timed as a whole.
int bench_train(const Args& a, int64_t batch, int64_t size, int64_t iters, int64_t warmup) {
  std::string arch = a.get("arch");
  std::shared_ptr<detail::Network> net;
  if (a.has("model")) {
    LoadOptions o;
    o.inference_only = false;
    net = detail::Network::load(a.get("model"), o, Architecture::ForImageClassification);
    arch = net->config.variant_name().empty() ? "custom" : net->config.variant_name();
  } else {
    if (arch.empty()) throw Error("--arch or --model is required (see --help)");
    net = std::make_shared<detail::Network>(ConvNextConfig::preset(arch, 1000), Architecture::ForImageClassification);
    net->init_weights(0);
  }
  const ConvNextConfig& cfg = net->config;
  const Tensor px = random_pixels(batch, cfg.num_channels, size);
  std::mt19937 rng(1);
  std::vector<int64_t> ids;
  for (int64_t n = 0; n < batch; ++n) ids.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(cfg.num_labels())));
  const Labels labels = Labels::classes(ids);
  train::Gradients grads(*net);
  train::AdamWOptions ao;
  ao.lr = 1e-4;
  train::AdamW opt(grads, ao);
  train::TrainGraph graph(*net);
  const bool json = a.has("json");
  if (!json) std::fprintf(stderr, "bench train %s batch %lld size %lld threads %d: ", arch.c_str(),
                          static_cast<long long>(batch), static_cast<long long>(size), num_threads());
  std::vector<double> ms;
  for (int64_t i = 0; i < warmup + iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    graph.forward_backward(px, labels, grads);
    train::clip_grad_norm(grads, 1.0);
    opt.step(grads, ao.lr);
    grads.zero();
    if (i >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!json) std::fputc('.', stderr);
  }
  if (!json) std::fputc('\n', stderr);
  const double median = median_of(ms);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  const double gflop = 3 * 2.0 * forward_macs(cfg, size, size) * static_cast<double>(batch) / 1e9;
  nlohmann::json j = {{"mode", "train"},     {"arch", arch},        {"batch", batch},
                      {"size", size},        {"threads", num_threads()}, {"dtype", "f32"},
                      {"median_ms", median}, {"min_ms", *std::min_element(ms.begin(), ms.end())},
                      {"images_per_s", 1000.0 * static_cast<double>(batch) / median},
                      {"gflops", gflop / (median / 1000.0)}, {"peak_rss_mb", rss_mb},
                      {"kernels", kernels::active_family()}};
  if (json) std::printf("%s\n", j.dump().c_str());
  else
    std::printf("train %s batch %lld at %lld: median %.1f ms per step, %.2f images/s, %.1f GFLOP/s, peak RSS %.0f MB [%s, %d threads]\n",
                arch.c_str(), static_cast<long long>(batch), static_cast<long long>(size), median,
                j["images_per_s"].get<double>(), j["gflops"].get<double>(), rss_mb, kernels::active_family(), num_threads());
  return 0;
}
}  // namespace

int cmd_bench(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json", "train", "profile"},
         {"arch", "model", "batch", "size", "threads", "dtype", "iters", "warmup"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const int64_t batch = a.get_int("batch", 1), size = a.get_int("size", 224), iters = a.get_int("iters", 10),
                warmup = a.get_int("warmup", 2);
  if (batch < 1 || size < 1 || iters < 1 || warmup < 0) throw Error("--batch, --size and --iters must be >= 1");
  const std::string dtype = a.get("dtype", "f32");
  if (dtype != "f32" && dtype != "bf16") throw Error("--dtype must be f32 or bf16, got '" + dtype + "'");
  const Precision precision = dtype == "bf16" ? Precision::BF16 : Precision::F32;
  set_num_threads(a.threads());
  if (a.has("train")) {
    if (dtype != "f32") throw Error("--train runs in fp32 (--dtype bf16 is for inference)");
    return bench_train(a, batch, size, iters, warmup);
  }

  std::string arch = a.get("arch");
  std::optional<ConvNextForImageClassification> model;
  if (a.has("model")) {
    LoadOptions o;
    o.precision = precision;
    model.emplace(ConvNextForImageClassification::from_pretrained(a.get("model"), o));
    arch = model->config().variant_name().empty() ? "custom" : model->config().variant_name();
  } else {
    if (arch.empty()) throw Error("--arch or --model is required (see --help)");
    // inference_only: as a loaded checkpoint, only the packed weights stay.
    model.emplace(ConvNextConfig::preset(arch, 1000), 0, /*inference_only=*/true, precision);
  }
  const ConvNextConfig& cfg = model->config();
  const Tensor px = random_pixels(batch, cfg.num_channels, size);

  if (!a.has("json")) std::fprintf(stderr, "bench %s batch %lld size %lld threads %d: ", arch.c_str(),
                                   static_cast<long long>(batch), static_cast<long long>(size), num_threads());
  for (int64_t i = 0; i < warmup; ++i) model->forward(px);
  // With --profile: each timed run's parts, and what the forward spent outside them (the head).
  detail::Network::ForwardProfile profile;
  if (a.has("profile")) model->network()->profile = &profile;
  std::vector<std::vector<double>> part_ms;
  std::vector<double> ms;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    model->forward(px);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (a.has("profile")) {
      part_ms.resize(profile.ms.size() + 1);
      double parts = 0;
      for (size_t p = 0; p < profile.ms.size(); ++p) {
        part_ms[p].push_back(profile.ms[p]);
        parts += profile.ms[p];
      }
      part_ms.back().push_back(ms.back() - parts);
    }
    if (!a.has("json")) std::fputc('.', stderr);
  }
  model->network()->profile = nullptr;
  if (!a.has("json")) std::fputc('\n', stderr);
  std::sort(ms.begin(), ms.end());  // ms.front() is the minimum below
  const double median = median_of(ms);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  const double gflop = 2.0 * forward_macs(cfg, size, size) * static_cast<double>(batch) / 1e9;
  nlohmann::json j = {{"arch", arch},
                      {"batch", batch},
                      {"size", size},
                      {"threads", num_threads()},
                      {"dtype", dtype},
                      {"median_ms", median},
                      {"min_ms", ms.front()},
                      {"images_per_s", 1000.0 * static_cast<double>(batch) / median},
                      {"gflops", gflop / (median / 1000.0)},
                      {"peak_rss_mb", rss_mb},
                      {"kernels", dtype == "bf16" ? (kernels::native_bf16() ? "avx512_bf16" : "portable_bf16")
                                                  : kernels::active_family()}};
  // The profile: part names from the forward pass, FLOPs from part_macs (same names).
  std::vector<std::tuple<std::string, double, double>> rows;  // part, median ms, GFLOP/s
  if (a.has("profile")) {
    const auto macs = part_macs(cfg, size, size);
    for (size_t p = 0; p < part_ms.size(); ++p) {
      const std::string name = p < profile.parts.size() ? profile.parts[p] : "head";
      double m = 0;
      for (const auto& [part, v] : macs)
        if (part == name) m = v;
      const double med = median_of(part_ms[p]);
      rows.emplace_back(name, med, med > 0 ? 2.0 * m * static_cast<double>(batch) / 1e9 / (med / 1000.0) : 0.0);
      j["profile"].push_back({{"part", name}, {"median_ms", med}, {"gflops", std::get<2>(rows.back())}});
    }
  }
  if (a.has("json")) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s batch %lld at %lld: median %.2f ms (min %.2f), %.1f images/s, %.1f GFLOP/s, peak RSS %.0f MB [%s, %d threads]\n",
                arch.c_str(), static_cast<long long>(batch), static_cast<long long>(size), median, ms.front(),
                j["images_per_s"].get<double>(), j["gflops"].get<double>(), rss_mb,
                j["kernels"].get<std::string>().c_str(), num_threads());
    if (!rows.empty()) std::printf("%-18s %10s %7s %9s\n", "part", "median ms", "share", "GFLOP/s");
    for (const auto& [name, med, gf] : rows) {
      std::printf("%-18s %10.3f %6.1f%% ", name.c_str(), med, 100.0 * med / median);
      if (gf > 0) std::printf("%9.0f\n", gf);
      else std::printf("%9s\n", "-");
    }
  }
  return 0;
}

}  // namespace convnext::cli
