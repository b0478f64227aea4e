// Evaluation of a classifier on a data source: loss, top-1, top-5, per-class accuracy and the
// confusion matrix (`convnext eval`, and the eval pass of `convnext train`).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "convnext/train.h"
#include "model/plan.h"
#include "train/data.h"

namespace convnext::train {

using EvalResult = convnext::EvalResult;

using EvalOptions = convnext::EvalOptions;

// Runs `net` (an inference plan: build a new one after the weights change) over every example
// of `source`, in batches, in order, read by the training's Loader with
// eval_loader_options(options). `options.progress(done, total)` is called after each batch.
// With `other` (a plan of the same parameters in another dtype), each batch also runs through it
// and the result counts the examples whose top-1 both give (EvalResult::agreed).
EvalResult evaluate(const detail::InferencePlan& net, const DataSource& source, const EvalOptions& options,
                    const detail::InferencePlan* other = nullptr);

// The loader of an evaluation: options.batch_size, options.workers, in order, no augmentation.
LoaderOptions eval_loader_options(const EvalOptions& options);

// convnext::eval_json, eval_text, write_confusion_svg (include/convnext/train.h).
std::string eval_json(const EvalResult& r);
std::string eval_text(const EvalResult& r);
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
