// pytorch_model.bin as torch.save writes it since PyTorch 1.6: a zip archive holding
// <archive>/data.pkl (the state dict, read by the restricted unpickler of torch_pickle.h) and
// one entry <archive>/data/<key> per storage. Nothing from the file is ever executed.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convnext/tensor.h"
#include "io/torch_pickle.h"
#include "io/zip_reader.h"

namespace convnext::io {

class TorchBinFile {
 public:
  static std::shared_ptr<TorchBinFile> open(const std::string& path);

  const std::string& path() const { return zip_->path(); }
  const std::vector<TorchTensorRecord>& tensors() const { return tensors_; }
  const TorchTensorRecord* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  void release_resident_pages() const { zip_->file()->release_resident_pages(); }

  // A float32 tensor: borrowed from the mapping when stored contiguous, F32 and aligned;
  // gathered (strides, offset) and converted from F16/BF16 otherwise. Other dtypes: Error.
  Tensor get_f32(const std::string& name) const;

 private:
  std::shared_ptr<ZipReader> zip_;
  std::string archive_;  // the folder inside the zip holding data.pkl
  std::vector<TorchTensorRecord> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace convnext::io
