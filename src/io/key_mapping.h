// Tensor names of the other ConvNeXt implementations, mapped to transformers' names
// (reference/hf_convnext_semantics.md §4): timm, the original facebookresearch code and
// torchvision. Also infers a ConvNextConfig from the shapes of a state dict when no config.json
// comes with it.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/tensor.h"

namespace convnext::io {

enum class Naming { Transformers, Timm, Original, Torchvision };
const char* naming_name(Naming n);  // "transformers", "timm", "facebookresearch (original)", "torchvision"

struct KeyMapping {
  Naming naming = Naming::Transformers;
  std::string stripped_prefix;                  // "module." (DataParallel) when every name had it
  std::map<std::string, std::string> hf_of;     // stored name -> transformers name (every stored name)
  std::map<std::string, Shape> hf_shape;        // transformers name -> shape served (after the shape fixes)
};

// Detects the naming of `tensors` (stored name -> shape) and maps every name. The transformers
// names keep their own prefix; the other namings map to the ForImageClassification names
// ("convnext." body, or "convnextv2." when the state dict has GRN tensors (ConvNeXt V2: timm's
// mlp.grn.weight/bias, facebookresearch's grn.gamma/beta), "classifier.*" head). Shape fixes:
// torchvision's layer_scale [C,1,1] -> [C], timm's conv MLP [4C,C,1,1] -> [4C,C] and
// [C,4C,1,1] -> [C,4C], timm's GRN [4C] -> [1,1,1,4C]. Throws Error "<origin>: ..." naming an
// example key when the naming is unknown or a key of a known naming has no mapping, and for
// timm's _ols models (an overlapping two-convolution stem that ConvNextConfig cannot express).
KeyMapping map_key_names(const std::map<std::string, Shape>& tensors, const std::string& origin);

// One stored name -> transformers name under `naming`; "" when it has none.
std::string map_key_name(Naming naming, const std::string& name);

// A config from the shapes of transformers-named tensors (ForImageClassification or Model names,
// V1 or V2): model_type (convnextv2 when GRN tensors exist), depths, hidden_sizes, num_channels,
// patch_size, num_labels (0 without a head),
// layer_scale_init_value (1e-6 when layer scale tensors exist, else 0), layer_norm_eps 1e-6 (the
// value of timm, the original and torchvision), architectures. `notes` gets one readable line per
// inferred field. Throws Error "<origin>: ..." when the tensors do not describe a ConvNeXt.
ConvNextConfig infer_config(const std::map<std::string, Shape>& hf_shapes, const std::string& origin,
                            std::vector<std::string>& notes);

}  // namespace convnext::io
