// Evaluation of a classifier on a data source: loss, top-1, top-5, per-class accuracy and the
// confusion matrix (`convnext eval`, and the eval pass of `convnext train`).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/data.h"

namespace convnext::train {

struct EvalResult {
  int64_t count = 0, skipped = 0;
  double loss = 0;            // mean over examples
  std::string problem_type;
  bool classification = false;  // single-label: the accuracy fields below are filled
  double top1 = 0, top5 = 0;
  std::vector<std::string> class_names;  // the model's id2label
  std::vector<int64_t> class_total, class_correct;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  double seconds = 0;
};

// Runs `net` (its inference form: call net.prepare() after the weights change) over every
// example of `source`, in batches, in order. `progress(done, total)` is called after each batch.
EvalResult evaluate(const detail::Network& net, const DataSource& source, int64_t batch_size,
                    const std::function<void(int64_t, int64_t)>& progress = {});

std::string eval_json(const EvalResult& r);   // one line
std::string eval_text(const EvalResult& r);   // the report for people, with the confusion matrix
void write_confusion_svg(const EvalResult& r, const std::string& path);

// training.svg: training loss per logged step, and evaluation loss / accuracy per epoch.
struct CurvePoint {
  double x, y;
};
struct TrainingCurves {
  std::vector<CurvePoint> loss, eval_loss, eval_accuracy;  // x: the optimizer step
};
// The curves of a log.jsonl (lines of other kinds and unreadable lines are passed over), up to
// `up_to_step` when it is >= 0; `kept`, when given, receives the log's lines up to there.
TrainingCurves read_training_log(const std::string& path, int64_t up_to_step = -1, std::string* kept = nullptr);
void write_training_svg(const std::string& path, const TrainingCurves& curves);

}  // namespace convnext::train
