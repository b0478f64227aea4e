#include "train/train_model.h"

#include <cstdio>

#include "kernels/kernels.h"
#include "model/plan.h"
#include "train/backprop.h"
#include "train/ddp.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/optimizer.h"

namespace convnext::train {

namespace {

// Float labels make a model without a problem type multi-label (regression with one label).
void adopt_data_labels(ConvNextConfig& config, const TrainingData& d, bool fresh) {
  if (!d.classes.empty()) {
    bool generic = true;
    for (const auto& [id, name] : config.id2label) generic = generic && name == "LABEL_" + std::to_string(id);
    if (generic || fresh)
      for (size_t i = 0; i < d.classes.size(); ++i) config.id2label[static_cast<int64_t>(i)] = d.classes[i];
  }
  if (d.source->float_labels() && !config.problem_type)
    config.problem_type = config.num_labels() == 1 ? "regression" : "multi_label_classification";
}

std::shared_ptr<detail::Parameters> make_parameters(const TrainOptions& o, const ModelSource& m, const TrainingData& d) {
  std::shared_ptr<detail::Parameters> net;
  if (m.fresh()) {
    ConvNextConfig cfg = m.cfg;
    cfg.set_num_labels(d.num_labels);
    cfg.architectures = {architecture_name(Architecture::ForImageClassification, cfg.is_v2())};
    if (o.drop_path_rate) cfg.drop_path_rate = *o.drop_path_rate;
    net = std::make_shared<detail::Parameters>(cfg, Architecture::ForImageClassification);
    net->init_weights(o.seed);
  } else {
    LoadOptions lo;
    lo.inference_only = false;
    lo.ignore_mismatched_sizes = o.ignore_mismatched_sizes;
    if (d.num_labels != m.cfg.num_labels()) lo.num_labels = d.num_labels;
    lo.seed = o.seed;
    net = detail::Parameters::load(m.dir, lo, Architecture::ForImageClassification);
    if (o.drop_path_rate) net->config.drop_path_rate = *o.drop_path_rate;
    for (const auto& w : net->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  }
  adopt_data_labels(net->config, d, m.fresh());
  return net;
}

}  // namespace

// The gradients and the graph are made for the network as it is once its labels are settled.
struct Model::Impl {
  std::shared_ptr<detail::Parameters> net;
  Gradients grads;
  AdamW opt;
  TrainGraph graph;
  std::unique_ptr<GradientReducer> reducer;  // data-parallel runs only
  Impl(std::shared_ptr<detail::Parameters> n, const AdamWOptions& ao, DType precision)
      : net(std::move(n)), grads(*net), opt(grads, ao), graph(*net, kernels::default_context(), precision) {}
};

Model::Model(const TrainOptions& o, const ModelSource& m, const TrainingData& d)
    : impl_(std::make_unique<Impl>(make_parameters(o, m, d), adamw_options(o), o.precision)) {
  Comm& comm = Comm::world();
  if (comm.distributed()) impl_->reducer = std::make_unique<GradientReducer>(comm, impl_->grads, o.bucket_mb);
}
Model::~Model() = default;

ConvNextConfig& Model::config() { return impl_->net->config; }
int64_t Model::parameter_count() const { return impl_->net->parameter_count; }
Gradients& Model::grads() { return impl_->grads; }
AdamW& Model::optimizer() { return impl_->opt; }

float Model::forward_backward(const Batch& b, float loss_scale, uint64_t drop_seed, bool sync) {
  std::vector<uint64_t> seeds;
  for (int64_t index : b.indices) seeds.push_back(sampling::example_seed(drop_seed, 0, index));
  StepOptions so;
  so.loss_scale = loss_scale;
  so.sample_seeds = &seeds;
  if (sync && impl_->reducer)
    so.on_grads_ready = [r = impl_->reducer.get()](const std::vector<const Tensor*>& p) { r->ready(p); };
  return impl_->graph.forward_backward(b.pixel_values, b.labels, impl_->grads, so).loss;
}

void Model::finish_sync() {
  if (impl_->reducer) impl_->reducer->finish();
}

double Model::last_sync_wait_seconds() const { return impl_->reducer ? impl_->reducer->last_wait_seconds() : 0.0; }

void Model::broadcast_weights() {
  Comm& comm = Comm::world();
  if (!comm.distributed()) return;
  impl_->net->for_each_parameter([&](const std::string&, Tensor& t) { comm.broadcast(t.data(), t.numel(), 0); });
}

EvalResult Model::evaluate(const DataSource& data, const EvalOptions& options) {
  // Evaluation runs the inference kernels: a plan packed from the weights as they are now.
  const detail::InferencePlan plan(*impl_->net, DType::F32, kernels::default_context(), /*release=*/false);
  return train::evaluate(plan, data, options);
}

void Model::save(const std::string& dir) { detail::save_parameters(*impl_->net, dir); }

}  // namespace convnext::train
