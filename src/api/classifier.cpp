// ImageClassifier and the pipeline's scoring (include/convnext/classifier.h).
#include "convnext/classifier.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "convnext/error.h"

namespace convnext {

namespace fs = std::filesystem;

ScoreFunction parse_score_function(const std::string& name) {
  if (name == "softmax") return ScoreFunction::Softmax;
  if (name == "sigmoid") return ScoreFunction::Sigmoid;
  if (name == "none") return ScoreFunction::None;
  throw Error("function_to_apply must be softmax, sigmoid or none, got '" + name + "'");
}

const char* score_function_name(ScoreFunction f) {
  switch (f) {
    case ScoreFunction::Softmax: return "softmax";
    case ScoreFunction::Sigmoid: return "sigmoid";
    case ScoreFunction::None: return "none";
    case ScoreFunction::Auto: break;
  }
  return "auto";
}

// transformers' ImageClassificationPipeline.postprocess: regression → none; multi-label or one
// label → sigmoid; single-label or several labels → softmax.
ScoreFunction resolve_score_function(const ConvNextConfig& c, ScoreFunction f) {
  if (f != ScoreFunction::Auto) return f;
  const std::string pt = c.problem_type.value_or("");
  if (pt == "regression") return ScoreFunction::None;
  if (pt == "multi_label_classification" || c.num_labels() == 1) return ScoreFunction::Sigmoid;
  return ScoreFunction::Softmax;
}

std::vector<std::vector<Prediction>> top_predictions(const Tensor& logits, const ConvNextConfig& config, int64_t k,
                                                     ScoreFunction f) {
  if (logits.ndim() != 2) throw Error("top_predictions: logits must be [N, num_labels], got " + shape_str(logits.shape()));
  f = resolve_score_function(config, f);
  const int64_t N = logits.dim(0), L = logits.dim(1);
  k = std::clamp<int64_t>(k, 0, L);
  std::vector<std::vector<Prediction>> out(static_cast<size_t>(N));
  std::vector<double> s(static_cast<size_t>(L));
  std::vector<int64_t> order(static_cast<size_t>(L));
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits.data() + n * L;
    if (f == ScoreFunction::Softmax) {
      double mx = z[0], sum = 0;
      for (int64_t j = 1; j < L; ++j) mx = std::max<double>(mx, z[j]);
      for (int64_t j = 0; j < L; ++j) sum += s[static_cast<size_t>(j)] = std::exp(z[j] - mx);
      for (double& v : s) v /= sum;
    } else {
      for (int64_t j = 0; j < L; ++j)
        s[static_cast<size_t>(j)] = f == ScoreFunction::Sigmoid ? 1.0 / (1.0 + std::exp(-static_cast<double>(z[j]))) : z[j];
    }
    for (int64_t j = 0; j < L; ++j) order[static_cast<size_t>(j)] = j;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return s[static_cast<size_t>(a)] > s[static_cast<size_t>(b)] || (s[static_cast<size_t>(a)] == s[static_cast<size_t>(b)] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = order[static_cast<size_t>(i)];
      const auto it = config.id2label.find(j);
      out[static_cast<size_t>(n)].push_back(
          {it == config.id2label.end() ? std::to_string(j) : it->second, j, static_cast<float>(s[static_cast<size_t>(j)])});
    }
  }
  return out;
}

bool is_image_file_name(const std::string& path) {
  static const char* kExt[] = {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".pnm"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

std::vector<std::string> list_image_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (!fs::is_directory(in, ec)) {
      out.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec) && is_image_file_name(it->path().string())) found.push_back(it->path().string());
    }
    std::sort(found.begin(), found.end());
    if (found.empty()) throw Error(in + ": no image files in the directory");
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

ImageClassifier::ImageClassifier(ConvNextForImageClassification model, ConvNextImageProcessor processor)
    : model_(std::move(model)), processor_(std::move(processor)) {
  const int64_t want = model_.config().num_channels, got = processor_.channels_for(want);
  if (got != want)
    throw Error("the preprocessor gives " + std::to_string(got) + "-channel images, the model takes " + std::to_string(want));
}

ImageClassifier ImageClassifier::from_pretrained(const std::string& path, const LoadOptions& options, ImageBackend backend) {
  auto model = ConvNextForImageClassification::from_pretrained(path, options);
  auto processor = ConvNextImageProcessor::from_pretrained(path, backend);
  try {
    return ImageClassifier(std::move(model), std::move(processor));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::vector<std::vector<Prediction>> ImageClassifier::classify(const Tensor& pixel_values, int64_t top_k,
                                                               ScoreFunction f) const {
  return top_predictions(model_.forward(pixel_values).logits, model_.config(), top_k, f);
}

std::vector<FileClassification> ImageClassifier::classify_files(
    const std::vector<std::string>& paths, const ClassifyOptions& o,
    const std::function<void(const FileClassification&)>& on_result) const {
  if (o.top_k < 1 || o.batch_size < 1) throw Error("classify: top_k and batch_size must be >= 1");
  const int64_t channels = processor_.channels_for(model_.config().num_channels);
  std::vector<FileClassification> results(paths.size());
  const auto batch_size = static_cast<size_t>(o.batch_size);
  for (size_t b0 = 0; b0 < paths.size(); b0 += batch_size) {
    const size_t b1 = std::min(paths.size(), b0 + batch_size);
    std::vector<PreprocessedFile> pix = processor_.preprocess_each(
        std::vector<std::string>(paths.begin() + static_cast<std::ptrdiff_t>(b0), paths.begin() + static_cast<std::ptrdiff_t>(b1)),
        o.decode, channels);
    // The images that decoded, batched; one of another size than the first is an error of its own.
    std::vector<size_t> ok;
    for (size_t i = 0; i < pix.size(); ++i) {
      FileClassification& r = results[b0 + i];
      r.file = paths[b0 + i];
      if (!pix[i].ok()) r.error = pix[i].error;
      else if (!ok.empty() && pix[i].pixel_values.shape() != pix[ok[0]].pixel_values.shape())
        r.error = r.file + ": preprocessed to " + shape_str(pix[i].pixel_values.shape()) + ", other images to " +
                  shape_str(pix[ok[0]].pixel_values.shape());
      else ok.push_back(i);
    }
    if (!ok.empty()) {
      std::vector<Tensor> images;
      for (size_t i : ok) images.push_back(pix[i].pixel_values);
      auto top = classify(stack(images), o.top_k, o.function);
      for (size_t k = 0; k < ok.size(); ++k) results[b0 + ok[k]].predictions = std::move(top[k]);
    }
    if (on_result)
      for (size_t i = b0; i < b1; ++i) on_result(results[i]);
  }
  return results;
}

}  // namespace convnext
