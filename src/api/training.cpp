// run_training, evaluate_dataset and the evaluation reports (include/convnext/train.h): the
// public entry points of src/train.
#include <filesystem>

#include "convnext/hub.h"
#include "convnext/image_processor.h"
#include "convnext/train.h"
#include "model/plan.h"
#include "train/data.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace convnext {

int run_training(const TrainOptions& options) { return train::run_training(options); }

int distributed_rank() { return train::Comm::world().rank(); }
int distributed_size() { return train::Comm::world().size(); }

EvalResult evaluate_dataset(const std::string& model, const std::string& data, const EvalOptions& options) {
  const std::string dir = resolve_model_path(model);
  LoadOptions lo;
  lo.precision = options.precision;
  lo.inference_only = !options.agree_with;  // a second dtype is packed from the kept weights
  const auto state = detail::ModelState::load(dir, lo, Architecture::ForImageClassification);
  const ConvNextConfig& config = state->params().config;
  // The processor beside the weights: the directory itself, or the folder of a weights file.
  std::string proc_dir = std::filesystem::is_directory(dir) ? dir : std::filesystem::path(dir).parent_path().string();
  if (proc_dir.empty()) proc_dir.push_back('.');  // not = ".": GCC 12 warns falsely (-Wrestrict, PR 105329)
  const auto proc = ConvNextImageProcessor::from_pretrained(proc_dir);
  const auto source = train::DataSource::open(data, proc, config.num_channels, config.num_labels());
  const auto other = options.agree_with ? state->plan(*options.agree_with) : nullptr;
  return train::evaluate(*state->plan(), *source, options, other.get());
}

std::string eval_json(const EvalResult& r) { return train::eval_json(r); }
std::string eval_text(const EvalResult& r) { return train::eval_text(r); }
void write_confusion_svg(const EvalResult& r, const std::string& path) { train::write_confusion_svg(r, path); }

}  // namespace convnext
