// The public classes: ConvNextModel (pooler), ConvNextForImageClassification (classifier and
// loss) and ConvNextBackbone (normalised feature maps), all over one Network.
#include <filesystem>

#include "convnext/error.h"
#include "io/safetensors.h"
#include "model/network.h"

namespace convnext {

namespace detail {

ModelBase::ModelBase(const std::string& path, const LoadOptions& options, Architecture arch)
    : net_(Network::load(path, options, arch)) {}

ModelBase::ModelBase(const ConvNextConfig& config, uint64_t seed, Architecture arch, bool inference_only,
                     Precision precision) {
  ConvNextConfig c = config;
  c.architectures = {architecture_name(arch)};
  net_ = std::make_shared<Network>(c, arch);
  net_->precision = precision;
  net_->init_weights(seed);
  net_->prepare(inference_only);
  net_->reserve_default_workspace();
}

const ConvNextConfig& ModelBase::config() const { return net_->config; }
Architecture ModelBase::architecture() const { return net_->arch; }
const std::vector<std::string>& ModelBase::load_warnings() const { return net_->warnings; }
Precision ModelBase::precision() const { return net_->precision; }
const std::string& ModelBase::weights_format() const { return net_->weights_format; }
const std::string& ModelBase::weights_dtype() const { return net_->weights_dtype; }
int64_t ModelBase::weights_file_bytes() const { return net_->weights_bytes; }

int64_t ModelBase::num_parameters() const { return net_->parameter_count; }

void ModelBase::save_pretrained(const std::string& dir, const std::string& dtype) const { save_network(*net_, dir, dtype); }

void save_network(Network& net, const std::string& dir, const std::string& dtype) {
  const DType d = parse_dtype(dtype);  // "float16", "f16", "torch.float16", ...
  if (net.inference_only)
    throw Error("this model was loaded with LoadOptions::inference_only, which releases the original weights; "
                "load it with inference_only = false to save it");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory (" + ec.message() + ")");
  ConvNextConfig config = net.config;
  config.dtype = dtype;
  config.save((std::filesystem::path(dir) / "config.json").string());
  io::SafetensorsWriter w;
  w.set_metadata("format", "pt");
  net.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (d == DType::F16) w.add_f16(name, t);
    else if (d == DType::BF16) w.add_bf16(name, t);
    else w.add(name, t);
  });
  w.save((std::filesystem::path(dir) / "model.safetensors").string());
}

namespace {
// LayerNorm over the channels of each row (the pooled vector, or each pixel of an NHWC map).
Tensor layer_norm_rows(const Tensor& x, int64_t rows, int64_t C, const LayerNormParams& p, float eps) {
  Tensor y(x.shape());
  kernels::layer_norm(x.data(), rows, C, p.weight.data(), p.bias.data(), eps, y.data());
  return y;
}

std::vector<Tensor> hidden_states_nchw(const Network::Result& r) {
  std::vector<Tensor> out;
  for (const Tensor& h : r.hidden_nhwc) out.push_back(nhwc_to_nchw(h));
  return out;
}
}  // namespace

Tensor classify_logits(const Network& net, const Tensor& pixel_values) {
  Network::Result r = net.run_encoder(pixel_values, false);
  const int64_t N = r.pooled.dim(0), C = r.pooled.dim(1);
  const Tensor pooled = layer_norm_rows(r.pooled, N, C, net.final_norm, static_cast<float>(net.config.layer_norm_eps));
  if (net.classifier.N == 0) return pooled;
  Tensor logits({N, net.config.num_labels()});
  kernels::linear(N, pooled.data(), C, net.classifier, logits.data(), logits.dim(1), false, Activation::Linear);
  return logits;
}

}  // namespace detail

using detail::Network;

ConvNextModel::ConvNextModel(const std::string& path, const LoadOptions& o) : ModelBase(path, o, Architecture::Model) {}
ConvNextModel::ConvNextModel(const ConvNextConfig& c, uint64_t seed, bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::Model, inference_only, precision) {}
ConvNextModel ConvNextModel::from_pretrained(const std::string& path, const LoadOptions& o) { return ConvNextModel(path, o); }

ModelOutput ConvNextModel::forward(const Tensor& pixel_values, bool output_hidden_states) const {
  Network::Result r = net_->run_encoder(pixel_values, output_hidden_states);
  ModelOutput out;
  const int64_t N = r.pooled.dim(0), C = r.pooled.dim(1);
  out.pooler_output = detail::layer_norm_rows(r.pooled, N, C, net_->final_norm, static_cast<float>(net_->config.layer_norm_eps));
  out.last_hidden_state = std::move(r.last_hidden_state);
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(r);
  return out;
}

ConvNextForImageClassification::ConvNextForImageClassification(const std::string& path, const LoadOptions& o)
    : ModelBase(path, o, Architecture::ForImageClassification) {}
ConvNextForImageClassification::ConvNextForImageClassification(const ConvNextConfig& c, uint64_t seed, bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::ForImageClassification, inference_only, precision) {}
ConvNextForImageClassification ConvNextForImageClassification::from_pretrained(const std::string& path,
                                                                               const LoadOptions& o) {
  return ConvNextForImageClassification(path, o);
}

ImageClassifierOutput ConvNextForImageClassification::forward(const Tensor& pixel_values, const Labels* labels,
                                                              bool output_hidden_states) const {
  Network::Result r = net_->run_encoder(pixel_values, output_hidden_states);
  ImageClassifierOutput out;
  const int64_t N = r.pooled.dim(0), C = r.pooled.dim(1);
  out.pooler_output = detail::layer_norm_rows(r.pooled, N, C, net_->final_norm, static_cast<float>(net_->config.layer_norm_eps));
  // classifier = nn.Linear(C_last, num_labels), or nn.Identity when num_labels == 0.
  if (net_->classifier.N == 0) {
    out.logits = out.pooler_output.clone();
  } else {
    out.logits = Tensor({N, net_->config.num_labels()});
    kernels::linear(N, out.pooler_output.data(), C, net_->classifier, out.logits.data(), out.logits.dim(1), false,
                    Activation::Linear);
  }
  out.last_hidden_state = std::move(r.last_hidden_state);
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(r);
  if (labels) {
    out.problem_type = net_->config.problem_type.value_or("");
    out.loss = classification_loss(out.logits, *labels, out.problem_type);
  }
  return out;
}

ConvNextBackbone::ConvNextBackbone(const std::string& path, const LoadOptions& o) : ModelBase(path, o, Architecture::Backbone) {}
ConvNextBackbone::ConvNextBackbone(const ConvNextConfig& c, uint64_t seed, bool inference_only, Precision precision)
    : ModelBase(c, seed, Architecture::Backbone, inference_only, precision) {}
ConvNextBackbone ConvNextBackbone::from_pretrained(const std::string& path, const LoadOptions& o) { return ConvNextBackbone(path, o); }

BackboneOutput ConvNextBackbone::forward(const Tensor& pixel_values, bool output_hidden_states) const {
  // The backbone always runs with every hidden state, then normalises the requested ones.
  Network::Result r = net_->run_encoder(pixel_values, true);
  BackboneOutput out;
  const auto& idx = net_->config.out_indices;
  for (size_t k = 0; k < idx.size(); ++k) {
    const Tensor& h = r.hidden_nhwc.at(static_cast<size_t>(idx[k]));
    const Tensor y = detail::layer_norm_rows(h, h.dim(0) * h.dim(1) * h.dim(2), h.dim(3), net_->backbone_norms[k], 1e-6f);
    out.feature_maps.push_back(detail::nhwc_to_nchw(y));
  }
  if (output_hidden_states) out.hidden_states = detail::hidden_states_nchw(r);
  return out;
}

}  // namespace convnext
