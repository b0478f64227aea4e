// tf_model.h5 as transformers' TFConvNextModel / TFConvNextForImageClassification save_pretrained
// writes it (Keras 2 model.save_weights, HDF5): the root attribute "layer_names" lists the
// top-level layers ("convnext", "classifier"); each layer's group has the attribute
// "weight_names" ("tf_conv_next_for_image_classification/convnext/encoder/stages.0/layers.0/
// dwconv/kernel:0", ...) and the datasets at those paths. Attributes may be fixed- or
// variable-length strings, and split into "<name>0", "<name>1", ... chunks as Keras does for
// long lists; a full-model save ("model_weights" group) is read too.
// Every weight is read at open (float32, float16 or float64, converted to float32) and served
// under its transformers PyTorch name, with the kernels transposed as transformers'
// pt<->tf conversion does: Conv2D HWIO -> OIHW (the grouped dwconv [7,7,1,C] -> [C,1,7,7]),
// DepthwiseConv2D [kh,kw,C,m] -> [C*m,1,kh,kw], Dense [in,out] -> [out,in].
// Read through libhdf5 (linked privately; this header does not include hdf5.h). Built without it
// (-DCONVNEXT_WITH_HDF5=OFF, or libhdf5-dev absent), open() throws an Error saying how to enable it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convnext/tensor.h"

namespace convnext::io {

struct TfH5Tensor {
  std::string name;    // transformers PyTorch name ("convnext.encoder.stages.0.layers.0.dwconv.weight")
  std::string keras;   // the dataset it came from ("convnext/tf_conv_next_.../dwconv/kernel:0")
  std::string dtype;   // as stored: "F32", "F16" or "F64"
  Tensor tensor;       // float32, PyTorch layout
};

class TfH5File {
 public:
  // Throws Error "<path>: ..." (one line naming the dataset or weight) on anything unexpected.
  static std::shared_ptr<TfH5File> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TfH5Tensor>& tensors() const { return tensors_; }
  const TfH5Tensor* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  Tensor get_f32(const std::string& name) const;

  // Keras weight name ("tf_conv_next_for_image_classification/convnext/embeddings/
  // patch_embeddings/kernel:0") -> transformers name of ConvNextForImageClassification
  // ("convnext.embeddings.patch_embeddings.weight"); "" when it is not a ConvNeXT weight.
  static std::string hf_name(const std::string& keras_name);

 private:
  std::string path_;
  std::vector<TfH5Tensor> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace convnext::io
