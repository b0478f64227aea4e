// A checkpoint directory as save_pretrained writes it: config.json plus model.safetensors, or
// model.safetensors.index.json and its shards; failing those, pytorch_model.bin or
// pytorch_model.bin.index.json and its shards (torch.save zip, read by a restricted unpickler).
// Gives tensors by their transformers names. A directory without those files may hold exactly one
// other weights file (*.safetensors, *.bin, *.pth, *.pt); a .pth / .pt file is read as a torch.save
// zip (its state dict may sit under "model", "state_dict", "model_ema" or "state_dict_ema").
// Failing safetensors and pytorch_model.bin, tf_model.h5 (TF / Keras HDF5, io/tf_h5.h) is read
// and served under the transformers PyTorch names.
// rename() serves tensors saved under another naming (timm, ...) by their transformers names.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convnext/tensor.h"
#include "io/safetensors.h"
#include "io/tf_h5.h"
#include "io/torch_bin.h"

namespace convnext::io {

class Checkpoint {
 public:
  // `path`: a directory, or a .safetensors / .safetensors.index.json / .bin / .pth / .pt /
  // .bin.index.json / .h5 file.
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  // shape() and dtype() read only the headers / pickle: no tensor data is touched.
  Shape shape(const std::string& name) const;
  std::string dtype(const std::string& name) const;
  Tensor get(const std::string& name) const;  // float32 (converted from F16/BF16 at load)
  const std::string& format() const { return format_; }  // "safetensors", "pytorch_model.bin (zip + restricted pickle)", "tf_model.h5 (Keras HDF5)", "... (sharded, N files)"
  const std::string& origin() const { return origin_; }
  // The stored dtype of the tensors, as torch names it: "float32", or for a mix each with its
  // count, the commonest first ("float16 (180 tensors), float32 (2 tensors)").
  std::string dtype_summary() const;
  // The size of the weight files (every shard; not the index), in bytes.
  int64_t file_bytes() const;
  // Drops the mapped pages from this process (they stay in the page cache): tensors still
  // borrowed from the files fault them back in on use. Only for mappings never written.
  void release_resident_pages() const;
  // Serves the stored tensor `old` as `hf_of[old]` with shape `shape_of[hf_of[old]]` (same
  // number of elements; the data is reshaped, not moved). Every stored name must be in hf_of.
  void rename(const std::map<std::string, std::string>& hf_of, const std::map<std::string, Shape>& shape_of);
  // The name a served tensor is stored under (itself unless renamed).
  std::string stored_name(const std::string& name) const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::shared_ptr<TorchBinFile>> bins_;  // used instead of files_ for pytorch_model.bin
  std::shared_ptr<TfH5File> h5_;                      // used instead of both for tf_model.h5
  std::map<std::string, size_t> where_;  // tensor name -> files_ (or bins_) index
  std::map<std::string, std::string> stored_;  // served name -> stored name, after rename()
  std::map<std::string, Shape> reshape_;       // served name -> served shape, after rename()
  std::string format_, origin_;
};

}  // namespace convnext::io
