// safetensors: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the tensor bytes. Reading memory-maps the file and validates every offset before any
// byte is touched; F32 tensors are used in place, F16/BF16/F64 are converted.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "convnext/tensor.h"
#include "io/mapped_file.h"

namespace convnext::io {

struct TensorInfo {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I64", ...
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data buffer
};

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
  const TensorInfo* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  void release_resident_pages() const { file_->release_resident_pages(); }

  // A float32 tensor: borrowed from the mapping when stored as aligned F32, converted otherwise.
  // Throws Error naming the file and tensor for a missing tensor or a non-float dtype.
  Tensor get_f32(const std::string& name) const;
  // Integer tensor (I64, I32, I16, I8, U8) as int64.
  std::vector<int64_t> get_i64(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Size in bytes of one element of a safetensors dtype, or 0 when unknown.
size_t dtype_size(const std::string& dtype);

// Writes tensors (F32, F16, BF16, I64) in the order given, header padded to 8 bytes.
class SafetensorsWriter {
 public:
  void add(const std::string& name, const Tensor& t);  // F32
  void add_f16(const std::string& name, const Tensor& t);
  void add_bf16(const std::string& name, const Tensor& t);
  void add_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void save(const std::string& path) const;  // written to a temporary name, then renamed

 private:
  struct Entry {
    std::string name, dtype;
    Shape shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// IEEE half and bfloat16 <-> float.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);  // round to nearest even, NaN kept

}  // namespace convnext::io
