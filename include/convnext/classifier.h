// Images to labels, as transformers' image-classification pipeline gives them: a processor and a
// ConvNextForImageClassification together, top-k labels with scores, files in batches with one
// result or one error per file.
//
//   auto clf = convnext::ImageClassifier::from_pretrained("models/convnext-fashion-mnist");
//   for (const auto& r : clf.classify_files({"a.png", "b.jpg"}))
//     if (r.ok()) std::printf("%s: %s %.3f\n", r.file.c_str(), r.predictions[0].label.c_str(), r.predictions[0].score);
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/export.h"
#include "convnext/image_processor.h"
#include "convnext/model.h"
#include "convnext/tensor.h"

namespace convnext {

// The pipeline's function_to_apply. Auto follows the model as transformers' pipeline does:
// none for regression, sigmoid for multi-label models and for a single label, softmax otherwise.
enum class ScoreFunction { Auto, Softmax, Sigmoid, None };
CONVNEXT_API ScoreFunction parse_score_function(const std::string& name);  // "softmax", "sigmoid", "none"
CONVNEXT_API const char* score_function_name(ScoreFunction f);
CONVNEXT_API ScoreFunction resolve_score_function(const ConvNextConfig& config, ScoreFunction f = ScoreFunction::Auto);

struct Prediction {
  std::string label;  // id2label's name (the index as text when id2label lacks it)
  int64_t index = 0;
  float score = 0;
};

// The top k predictions of each row of logits [N, num_labels], best first (ties: lower index).
CONVNEXT_API std::vector<std::vector<Prediction>> top_predictions(const Tensor& logits, const ConvNextConfig& config, int64_t k,
                                                     ScoreFunction f = ScoreFunction::Auto);

// Image files the tools take from a directory: .jpg .jpeg .jfif .png .webp .bmp .ppm .pgm .pnm
// (any case).
CONVNEXT_API bool is_image_file_name(const std::string& path);
// Files as given; directories walked (recursively, sorted) for image files. A directory without
// any is an Error naming it.
CONVNEXT_API std::vector<std::string> list_image_files(const std::vector<std::string>& inputs);

struct ClassifyOptions {
  int64_t top_k = 5;
  int64_t batch_size = 8;  // images per forward pass
  ScoreFunction function = ScoreFunction::Auto;
  DecodeSettings decode;
};

struct FileClassification {
  std::string file;
  std::vector<Prediction> predictions;
  std::string error;  // one line naming the file, when it could not be classified
  bool ok() const { return error.empty(); }
};

class CONVNEXT_API ImageClassifier {
 public:
  // The model and the preprocessor_config.json of one checkpoint (a directory, hub id or any
  // layout from_pretrained reads); Error when the processor's channels differ from the model's.
  static ImageClassifier from_pretrained(const std::string& path, const LoadOptions& options = {},
                                         ImageBackend backend = ImageBackend::Pil);
  ImageClassifier(ConvNextForImageClassification model, ConvNextImageProcessor processor);

  const ConvNextForImageClassification& model() const { return model_; }
  const ConvNextImageProcessor& processor() const { return processor_; }
  const ConvNextConfig& config() const { return model_.config(); }

  // pixel_values [N, C, H, W] → the top k of each image.
  std::vector<std::vector<Prediction>> classify(const Tensor& pixel_values, int64_t top_k = 5,
                                                ScoreFunction f = ScoreFunction::Auto) const;
  // Files, decoded and preprocessed in parallel and run in batches: one result per file, in
  // order; a file that cannot be read gets its error and the others go on. `on_result` (when
  // given) sees each result as soon as its batch is done.
  std::vector<FileClassification> classify_files(
      const std::vector<std::string>& paths, const ClassifyOptions& options = {},
      const std::function<void(const FileClassification&)>& on_result = {}) const;

 private:
  ConvNextForImageClassification model_;
  ConvNextImageProcessor processor_;
};

}  // namespace convnext
