// convnext classify: images in, labels out.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "images.h"
#include "convnext/convnext.h"

namespace convnext::cli {

namespace {
const char* kHelp = R"(usage: convnext classify --model DIR [--top-k K] [--json] [--batch-size B] [--backend pil|torchvision]
                         [--no-exif] [--max-pixels N] [--threads N] [--dtype f32|bf16|int8]
                         [--function-to-apply softmax|sigmoid|none] IMAGE_OR_DIR...

Classifies images with the ConvNextForImageClassification checkpoint in DIR, preprocessed with
DIR's own preprocessor_config.json (the class defaults when there is none). Directories are
walked for image files. For each image prints the top K labels (default 5) from id2label with
scores as transformers' image-classification pipeline computes them: --function-to-apply
softmax|sigmoid|none, by default the model's (none for regression, sigmoid for multi-label and
single-label-output models, softmax otherwise); --json prints one JSON object per image and line.
A file that cannot be read is reported and skipped; the exit status is then non-zero.
)";

}  // namespace

int cmd_classify(int argc, char** argv, int first) {
  Args a(argc, argv, first, {"json", "no-exif"}, {"model", "top-k", "batch-size", "backend", "max-pixels", "threads", "dtype", "function-to-apply"});
  if (a.help()) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string dir = a.required("model");
  ClassifyOptions o;
  o.top_k = a.get_int("top-k", 5);
  o.batch_size = a.get_int("batch-size", 8);
  if (o.top_k < 1 || o.batch_size < 1) throw Error("--top-k and --batch-size must be >= 1");
  if (a.has("function-to-apply")) o.function = parse_score_function(a.get("function-to-apply"));
  if (a.positional().empty()) throw Error("no images given (see --help)");
  set_num_threads(a.threads());
  const bool json = a.has("json");
  o.decode = parse_decode(a);

  LoadOptions opts;
  opts.precision = a.dtype();
  const ImageClassifier clf = ImageClassifier::from_pretrained(dir, opts, parse_backend(a));
  const char* function = score_function_name(resolve_score_function(clf.config(), o.function));
  const std::string problem = clf.config().resolved_problem_type();
  const std::vector<std::string> files = list_image_files(a.positional());

  int failures = 0;
  Progress progress("classify", files.size());
  clf.classify_files(files, o, [&](const FileClassification& r) {
    progress.advance(1);
    if (!r.ok()) {
      std::fprintf(stderr, "convnext classify: error: %s\n", r.error.c_str());
      ++failures;
      return;
    }
    if (json) {
      nlohmann::json j = {{"image", r.file}, {"problem_type", problem}, {"function_to_apply", function}};
      j["predictions"] = nlohmann::json::array();
      for (const Prediction& p : r.predictions)
        j["predictions"].push_back({{"label", p.label}, {"index", p.index}, {"score", p.score}});
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n", r.file.c_str());
      for (const Prediction& p : r.predictions) std::printf("  %8.4f  %s\n", p.score, p.label.c_str());
    }
    std::fflush(stdout);
  });
  return failures ? 1 : 0;
}

}  // namespace convnext::cli
