// The heads over the encoder and the public classes: ConvNextModel (pooler),
// ConvNextForImageClassification (classifier and loss) and ConvNextBackbone (normalised feature
// maps), each a ModelState (parameters + inference plans) run with an ExecutionContext.
#include "convnext/error.h"
#include "model/layers.h"
#include "model/plan.h"

namespace convnext {

namespace detail {

Tensor InferencePlan::pooler_output(const Exec& ex, const Tensor& pooled) const {
  const int64_t N = pooled.dim(0), C = pooled.dim(1);
  Tensor out({N, C});
  classifier_head(ex.kernels, pooled.data(), N, C, final_norm.gamma.data(), final_norm.beta.data(),
                  static_cast<float>(config.layer_norm_eps), nullptr, out.data(), nullptr, nullptr);
  return out;
}

// classifier = nn.Linear(C_last, num_labels), or nn.Identity when num_labels == 0.
Tensor InferencePlan::logits(const Exec& ex, const Tensor& pooler_output) const {
  if (classifier.N == 0) return pooler_output.clone();
  const int64_t N = pooler_output.dim(0);
  Tensor out({N, classifier.N});
  kernels::linear(ex.kernels, N, pooler_output.data(), pooler_output.dim(1), classifier, out.data(), classifier.N,
                  /*accumulate=*/false, Activation::Linear);
  return out;
}

Tensor InferencePlan::classify(const Exec& ex, const Tensor& pixel_values) const {
  const Result r = run_encoder(ex, pixel_values, false);
  return logits(ex, pooler_output(ex, r.pooled));
}

// ConvNextBackbone: hidden_states_norms.<stage> (eps 1e-6) on each requested map.
std::vector<Tensor> InferencePlan::feature_maps(const Exec& ex, const Result& r) const {
  std::vector<Tensor> out;
  const auto& idx = config.out_indices;
  for (size_t k = 0; k < idx.size(); ++k) {
    const Tensor& h = r.hidden_nhwc.at(static_cast<size_t>(idx[k]));
    Tensor y(h.shape());
    layer_norm(ex.kernels, h.data(), h.dim(0) * h.dim(1) * h.dim(2), h.dim(3), backbone_norms[k].gamma.data(),
               backbone_norms[k].beta.data(), kBlockEps, y.data(), nullptr);
    out.push_back(nhwc_to_nchw(ex.kernels, y));
  }
  return out;
}

namespace {
std::vector<Tensor> hidden_states_nchw(const Exec& ex, const InferencePlan::Result& r) {
  std::vector<Tensor> out;
  for (const Tensor& h : r.hidden_nhwc) out.push_back(nhwc_to_nchw(ex.kernels, h));
  return out;
}
}  // namespace

ModelBase::ModelBase(const std::string& path, const LoadOptions& options, Architecture arch)
    : state_(ModelState::load(path, options, arch)) {}

ModelBase::ModelBase(const ConvNextConfig& config, uint64_t seed, Architecture arch, bool inference_only,
                     Precision precision)
    : state_(ModelState::fresh(config, seed, arch, inference_only, precision)) {}

const ConvNextConfig& ModelBase::config() const { return state_->params().config; }
Architecture ModelBase::architecture() const { return state_->params().arch; }
const std::vector<std::string>& ModelBase::load_warnings() const { return state_->params().warnings; }
Precision ModelBase::precision() const { return state_->precision(); }
const std::string& ModelBase::weights_format() const { return state_->params().weights_format; }
const std::string& ModelBase::weights_dtype() const { return state_->params().weights_dtype; }
int64_t ModelBase::weights_file_bytes() const { return state_->params().weights_bytes; }
int64_t ModelBase::num_parameters() const { return state_->params().parameter_count; }

void ModelBase::save_pretrained(const std::string& dir, const std::string& dtype) const {
  save_parameters(state_->params(), dir, dtype);
}

}  // namespace detail

using detail::Exec;
using detail::InferencePlan;

ConvNextModel::ConvNextModel(const std::string& path, const LoadOptions& o) : ModelBase(path, o, Architecture::Model) {}
ConvNextModel::ConvNextModel(const ConvNextConfig& c, uint64_t seed, bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::Model, inference_only, precision) {}
ConvNextModel ConvNextModel::from_pretrained(const std::string& path, const LoadOptions& o) { return ConvNextModel(path, o); }

ModelOutput ConvNextModel::forward(const Tensor& pixel_values, bool output_hidden_states,
                                   const ExecutionContext& ctx) const {
  const Exec ex = detail::resolve(ctx);
  const auto plan = state_->plan(ctx.dtype);
  InferencePlan::Result r = plan->run_encoder(ex, pixel_values, output_hidden_states);
  ModelOutput out;
  out.pooler_output = plan->pooler_output(ex, r.pooled);
  out.last_hidden_state = std::move(r.last_hidden_state);
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(ex, r);
  return out;
}

ConvNextForImageClassification::ConvNextForImageClassification(const std::string& path, const LoadOptions& o)
    : ModelBase(path, o, Architecture::ForImageClassification) {}
ConvNextForImageClassification::ConvNextForImageClassification(const ConvNextConfig& c, uint64_t seed,
                                                               bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::ForImageClassification, inference_only, precision) {}
ConvNextForImageClassification ConvNextForImageClassification::from_pretrained(const std::string& path,
                                                                               const LoadOptions& o) {
  return ConvNextForImageClassification(path, o);
}

ImageClassifierOutput ConvNextForImageClassification::forward(const Tensor& pixel_values, const Labels* labels,
                                                              bool output_hidden_states,
                                                              const ExecutionContext& ctx) const {
  const Exec ex = detail::resolve(ctx);
  const auto plan = state_->plan(ctx.dtype);
  InferencePlan::Result r = plan->run_encoder(ex, pixel_values, output_hidden_states);
  ImageClassifierOutput out;
  out.pooler_output = plan->pooler_output(ex, r.pooled);
  out.logits = plan->logits(ex, out.pooler_output);
  out.last_hidden_state = std::move(r.last_hidden_state);
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(ex, r);
  if (labels) {
    out.problem_type = config().problem_type.value_or("");
    out.loss = classification_loss(out.logits, *labels, out.problem_type);
  }
  return out;
}

ConvNextBackbone::ConvNextBackbone(const std::string& path, const LoadOptions& o) : ModelBase(path, o, Architecture::Backbone) {}
ConvNextBackbone::ConvNextBackbone(const ConvNextConfig& c, uint64_t seed, bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::Backbone, inference_only, precision) {}
ConvNextBackbone ConvNextBackbone::from_pretrained(const std::string& path, const LoadOptions& o) { return ConvNextBackbone(path, o); }

BackboneOutput ConvNextBackbone::forward(const Tensor& pixel_values, bool output_hidden_states,
                                         const ExecutionContext& ctx) const {
  const Exec ex = detail::resolve(ctx);
  const auto plan = state_->plan(ctx.dtype);
  // The backbone always runs with every hidden state, then normalises the requested ones.
  const InferencePlan::Result r = plan->run_encoder(ex, pixel_values, true);
  BackboneOutput out;
  out.feature_maps = plan->feature_maps(ex, r);
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(ex, r);
  return out;
}

}  // namespace convnext
