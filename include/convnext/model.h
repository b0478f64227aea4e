// The three ConvNeXT model classes of transformers, loaded from a save_pretrained directory:
//
//   auto model = convnext::ConvNextForImageClassification::from_pretrained("path/to/dir");
//   auto out = model.forward(pixel_values);          // pixel_values: float [N, C, H, W]
//   out.logits                                        // [N, num_labels]
//
// Tensors at the API edge are NCHW, as transformers exposes them; inside everything is NHWC.
// A model is its parameters (load, save, train) and an inference plan (the weights packed for
// one dtype, a workspace); every forward takes an ExecutionContext (convnext/context.h: threads,
// kernels, dtype, profile), the process defaults when omitted. Concurrent forwards on one model
// object are safe; they take turns on its workspace.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/context.h"
#include "convnext/dtype.h"
#include "convnext/export.h"
#include "convnext/tensor.h"

namespace convnext {

// Precision (convnext/dtype.h) is the arithmetic of the pointwise and downsampling GEMMs: F32, or
// BF16, which keeps those weights in bfloat16 and multiplies with vdpbf16ps (fp32 accumulation;
// LayerNorm, GELU, the depthwise conv and the residual stay fp32): about twice the speed on CPUs
// with fast vdpbf16ps, about 3 significant digits per product. F16 arithmetic is an Error.

struct LoadOptions {
  // Like transformers' ignore_mismatched_sizes: a checkpoint tensor whose shape differs from
  // the config (typically the classifier of another label set) is replaced by a freshly
  // initialised one instead of being an error.
  bool ignore_mismatched_sizes = false;
  // Overrides the number of labels of config.json (with generic names LABEL_i).
  std::optional<int64_t> num_labels;
  uint64_t seed = 0;  // for freshly initialised tensors
  // Keep only what inference needs: once the weights are packed for the kernels (LayerNorm and
  // layer scale folded in), the original weight matrices are released and the checkpoint's
  // mapped pages handed back, which halves the memory. Such a model cannot be saved or trained;
  // set false for that.
  bool inference_only = true;
  Precision precision = Precision::F32;
};

// Targets for the loss. Integer class ids (single-label classification, -100 = ignore) or float
// values: [N] or [N, num_labels] for regression and multi-label classification.
struct Labels {
  std::vector<int64_t> class_ids;
  Tensor values;
  bool is_integer() const { return values.empty(); }
  static Labels classes(std::vector<int64_t> ids) { return Labels{std::move(ids), {}}; }
  static Labels floats(Tensor v) { return Labels{{}, std::move(v)}; }
};

struct ModelOutput {
  Tensor last_hidden_state;           // [N, C_last, H/32, W/32] (no norm applied)
  Tensor pooler_output;               // [N, C_last]: mean over H,W then LayerNorm(layer_norm_eps)
  std::vector<Tensor> hidden_states;  // num_stages + 1 tensors when requested: embeddings, each stage
};

struct ImageClassifierOutput {
  std::optional<float> loss;  // when labels were given
  std::string problem_type;   // the loss that was used (config's, or inferred as transformers does)
  Tensor logits;              // [N, num_labels] ([N, C_last] pooled features when num_labels == 0)
  Tensor pooler_output, last_hidden_state;
  std::vector<Tensor> hidden_states;
};

struct BackboneOutput {
  std::vector<Tensor> feature_maps;   // one per out_features entry, in stage order
  std::vector<Tensor> hidden_states;  // when requested
};

namespace detail {
class ModelState;
struct Access;

class CONVNEXT_API ModelBase {
 public:
  const ConvNextConfig& config() const;
  Architecture architecture() const;
  int64_t num_parameters() const;
  // Writes config.json and model.safetensors that transformers' from_pretrained reads, the
  // weights as "float32", "float16" or "bfloat16" (rounded to nearest even, as torch's .to()).
  void save_pretrained(const std::string& dir, const std::string& dtype = "float32") const;
  // What loading noticed but did not refuse (freshly initialised heads, ignored tensors).
  const std::vector<std::string>& load_warnings() const;
  // The checkpoint's file format ("safetensors", "safetensors (sharded, 3 files)", "new").
  const std::string& weights_format() const;
  // The weights' dtype as the checkpoint stores them ("float32", "float16", "bfloat16", or a mix
  // with counts; empty for fresh weights) and the size of its weight files in bytes.
  const std::string& weights_dtype() const;
  int64_t weights_file_bytes() const;
  Precision precision() const;
 protected:
  friend struct Access;  // the library's implementation files reach the ModelState through it
  ModelBase(const std::string& path, const LoadOptions& options, Architecture arch);
  ModelBase(const ConvNextConfig& config, uint64_t seed, Architecture arch, bool inference_only, Precision precision);
  std::shared_ptr<ModelState> state_;
};
}  // namespace detail

class CONVNEXT_API ConvNextModel : public detail::ModelBase {
 public:
  static ConvNextModel from_pretrained(const std::string& path, const LoadOptions& options = {});
  // A model with freshly initialised weights (transformers' _init_weights).
  explicit ConvNextModel(const ConvNextConfig& config, uint64_t seed = 0, bool inference_only = false,
                  Precision precision = Precision::F32);
  ModelOutput forward(const Tensor& pixel_values, bool output_hidden_states = false,
                      const ExecutionContext& ctx = {}) const;

 private:
  ConvNextModel(const std::string& path, const LoadOptions& options);
};

class CONVNEXT_API ConvNextForImageClassification : public detail::ModelBase {
 public:
  static ConvNextForImageClassification from_pretrained(const std::string& path, const LoadOptions& options = {});
  explicit ConvNextForImageClassification(const ConvNextConfig& config, uint64_t seed = 0, bool inference_only = false,
                  Precision precision = Precision::F32);
  ImageClassifierOutput forward(const Tensor& pixel_values, const Labels* labels = nullptr,
                                bool output_hidden_states = false, const ExecutionContext& ctx = {}) const;

 private:
  ConvNextForImageClassification(const std::string& path, const LoadOptions& options);
};

class CONVNEXT_API ConvNextBackbone : public detail::ModelBase {
 public:
  static ConvNextBackbone from_pretrained(const std::string& path, const LoadOptions& options = {});
  explicit ConvNextBackbone(const ConvNextConfig& config, uint64_t seed = 0, bool inference_only = false,
                  Precision precision = Precision::F32);
  BackboneOutput forward(const Tensor& pixel_values, bool output_hidden_states = false,
                         const ExecutionContext& ctx = {}) const;

 private:
  ConvNextBackbone(const std::string& path, const LoadOptions& options);
};

// The config a checkpoint loads with: its config.json, or for a timm / facebookresearch /
// torchvision state dict without one, the config inferred from the tensor shapes.
CONVNEXT_API ConvNextConfig config_of_checkpoint(const std::string& path);

// Loss of transformers' ForImageClassification for the given logits and labels. `problem_type`
// may be empty: it is then inferred (num_labels 1 → regression, integer labels → single-label,
// otherwise multi-label) and written back.
CONVNEXT_API float classification_loss(const Tensor& logits, const Labels& labels, std::string& problem_type);

}  // namespace convnext
