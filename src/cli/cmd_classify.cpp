// convnext classify: images in, labels out.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/images.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext classify --model DIR [--top-k K] [--json] [--batch-size B] [--backend pil|torchvision]
                         [--no-exif] [--max-pixels N] [--threads N] [--dtype f32|bf16] IMAGE_OR_DIR...

Classifies images with the ConvNextForImageClassification checkpoint in DIR, preprocessed with
DIR's own preprocessor_config.json (the class defaults when there is none). Directories are
walked for image files. For each image prints the top K labels (default 5) from id2label with
softmax scores (sigmoid for multi-label models, the raw value for regression); --json prints
one JSON object per image and line. A file that cannot be read is reported and skipped; the
exit status is then non-zero.
)";

struct Scored {
  int64_t index;
  float score;
};

std::vector<Scored> scores_for(const float* z, int64_t L, const std::string& problem, int64_t k) {
  std::vector<Scored> s(static_cast<size_t>(L));
  if (problem == "regression") {
    for (int64_t j = 0; j < L; ++j) s[static_cast<size_t>(j)] = {j, z[j]};
  } else if (problem == "multi_label_classification") {
    for (int64_t j = 0; j < L; ++j) s[static_cast<size_t>(j)] = {j, static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(z[j]))))};
  } else {
    double mx = z[0], sum = 0;
    for (int64_t j = 1; j < L; ++j) mx = std::max<double>(mx, z[j]);
    for (int64_t j = 0; j < L; ++j) sum += std::exp(z[j] - mx);
    for (int64_t j = 0; j < L; ++j) s[static_cast<size_t>(j)] = {j, static_cast<float>(std::exp(z[j] - mx) / sum)};
  }
  if (problem == "regression") return s;
  k = std::min<int64_t>(k, L);
  std::partial_sort(s.begin(), s.begin() + k, s.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  s.resize(static_cast<size_t>(k));
  return s;
}
}  // namespace

int cmd_classify(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json", "no-exif"}, {"model", "top-k", "batch-size", "backend", "max-pixels", "threads", "dtype"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string dir = a.required("model");
  const int64_t top_k = a.get_int("top-k", 5), batch_size = a.get_int("batch-size", 8);
  if (top_k < 1 || batch_size < 1) throw Error("--top-k and --batch-size must be >= 1");
  if (a.positional().empty()) throw Error("no images given (see --help)");
  set_num_threads(a.threads());
  const bool json = a.has("json");
  const DecodeSettings decode = parse_decode(a);

  LoadOptions opts;
  if (a.bf16()) opts.precision = Precision::BF16;
  auto model = ConvNextForImageClassification::from_pretrained(dir, opts);
  const ConvNextConfig& cfg = model.config();
  const auto proc = ConvNextImageProcessor::from_pretrained(dir, parse_backend(a));
  const int64_t channels = proc.channels_for(cfg.num_channels);
  if (channels != cfg.num_channels)
    throw Error(dir + ": preprocessor_config.json gives " + std::to_string(channels) + "-channel images, the model takes " +
                std::to_string(cfg.num_channels));
  std::string problem = cfg.problem_type.value_or(cfg.num_labels() == 1 ? "regression" : "single_label_classification");
  const std::vector<std::string> files = collect_images(a.positional());

  int failures = 0;
  Progress progress("classify", files.size());
  for (size_t b0 = 0; b0 < files.size(); b0 += static_cast<size_t>(batch_size)) {
    const size_t b1 = std::min(files.size(), b0 + static_cast<size_t>(batch_size));
    // Decode and preprocess in parallel; a bad file is reported, the rest go on.
    std::vector<Tensor> pix(b1 - b0);
    std::vector<std::string> err(b1 - b0);
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = b0; i < b1; ++i) {
      try {
        pix[i - b0] = proc.preprocess(ConvNextImageProcessor::load_image(files[i], channels, decode));
      } catch (const std::exception& e) {
        err[i - b0] = e.what();
      }
    }
    std::vector<size_t> ok;
    for (size_t i = 0; i < pix.size(); ++i) {
      if (!err[i].empty()) {
        std::fprintf(stderr, "convnext classify: error: %s%s%s\n",
                     err[i].rfind(files[b0 + i], 0) == 0 ? "" : files[b0 + i].c_str(),
                     err[i].rfind(files[b0 + i], 0) == 0 ? "" : ": ", err[i].c_str());
        ++failures;
      } else if (!ok.empty() && pix[i].shape() != pix[ok[0]].shape()) {
        std::fprintf(stderr, "convnext classify: error: %s: preprocessed to %s, other images to %s\n", files[b0 + i].c_str(),
                     shape_str(pix[i].shape()).c_str(), shape_str(pix[ok[0]].shape()).c_str());
        ++failures;
      } else {
        ok.push_back(i);
      }
    }
    progress.advance(b1 - b0);
    if (ok.empty()) continue;
    const Shape s = pix[ok[0]].shape();
    Tensor batch({static_cast<int64_t>(ok.size()), s[0], s[1], s[2]});
    for (size_t k = 0; k < ok.size(); ++k)
      std::copy(pix[ok[k]].data(), pix[ok[k]].data() + pix[ok[k]].numel(), batch.data() + static_cast<int64_t>(k) * pix[ok[k]].numel());
    const Tensor logits = model.forward(batch).logits;
    const int64_t L = logits.dim(1);
    for (size_t k = 0; k < ok.size(); ++k) {
      const std::string& file = files[b0 + ok[k]];
      const auto top = scores_for(logits.data() + static_cast<int64_t>(k) * L, L, problem, top_k);
      if (json) {
        nlohmann::json j = {{"image", file}, {"problem_type", problem}};
        for (const Scored& t : top) {
          const auto it = cfg.id2label.find(t.index);
          j["predictions"].push_back({{"label", it == cfg.id2label.end() ? std::to_string(t.index) : it->second},
                                      {"index", t.index},
                                      {"score", t.score}});
        }
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", file.c_str());
        for (const Scored& t : top) {
          const auto it = cfg.id2label.find(t.index);
          std::printf("  %8.4f  %s\n", t.score, it == cfg.id2label.end() ? std::to_string(t.index).c_str() : it->second.c_str());
        }
      }
      std::fflush(stdout);
    }
  }
  if (failures) {
    std::fprintf(stderr, "convnext classify: %d of %zu images could not be read\n", failures, files.size());
    return 1;
  }
  return 0;
}

}  // namespace convnext::cli
