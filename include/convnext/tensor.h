// A float32 tensor: a shape and a pointer to contiguous row-major data, which it either owns
// or borrows from something kept alive by `owner` (for example a memory-mapped checkpoint).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "convnext/export.h"

namespace convnext {

using Shape = std::vector<int64_t>;

CONVNEXT_API std::string shape_str(const Shape& shape);  // "[2,3,64,64]"
CONVNEXT_API int64_t shape_numel(const Shape& shape);

class CONVNEXT_API Tensor {
 public:
  Tensor() = default;
  // A new zero-filled tensor.
  explicit Tensor(Shape shape);
  Tensor(Shape shape, const std::vector<float>& values);
  // A tensor that borrows `data`; `owner` keeps the memory alive.
  static Tensor borrow(Shape shape, float* data, std::shared_ptr<void> owner);

  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + ndim() : i)); }
  int64_t numel() const { return shape_numel(shape_); }
  bool empty() const { return data_ == nullptr; }
  bool borrowed() const { return borrowed_; }  // made by borrow(): memory someone else owns

  float* data() { return data_; }
  const float* data() const { return data_; }
  float operator[](int64_t i) const { return data_[i]; }
  float& operator[](int64_t i) { return data_[i]; }

  // A deep copy that owns its data.
  Tensor clone() const;
  // Same data, new shape with the same number of elements.
  Tensor reshape(Shape shape) const;

 private:
  Shape shape_;
  std::shared_ptr<void> owner_;
  float* data_ = nullptr;
  bool borrowed_ = false;
};

// Tensors of one shape S stacked along a new first axis: [items.size(), S...] (torch.stack).
// An empty list or a shape that differs from the first is an Error.
CONVNEXT_API Tensor stack(const std::vector<Tensor>& items);

// Reads one tensor (F32, or F16/BF16/F64 converted) from a safetensors file.
CONVNEXT_API Tensor load_tensor(const std::string& safetensors_path, const std::string& name);
// Writes F32 tensors to a safetensors file, in the order given.
CONVNEXT_API void save_tensors(const std::string& safetensors_path, const std::vector<std::pair<std::string, Tensor>>& tensors);

namespace io {
class SafetensorsFile;
class SafetensorsWriter;
}  // namespace io

// A safetensors file opened for reading: memory-mapped, every offset checked when it opens.
// Errors name the file and the tensor.
class CONVNEXT_API TensorFile {
 public:
  static TensorFile open(const std::string& path);
  const std::string& path() const;
  std::vector<std::string> names() const;  // in the order of their bytes in the file
  bool contains(const std::string& name) const;
  std::string dtype(const std::string& name) const;  // "F32", "F16", "BF16", "F64", "I64", "I32", "U8", ...
  Shape shape(const std::string& name) const;
  bool is_floating(const std::string& name) const;
  // As float32 (F16, BF16 and F64 converted); an integer tensor is an Error.
  Tensor get(const std::string& name) const;
  // An integer tensor (I64, I32, I16, I8, U8) as int64 (labels).
  std::vector<int64_t> get_int64(const std::string& name) const;

 private:
  std::shared_ptr<const io::SafetensorsFile> file_;
};

// Writes tensors to a safetensors file in the order added: F32, and I64 (labels). The file is
// written under a temporary name and renamed, so a reader never sees half of it.
class CONVNEXT_API TensorFileWriter {
 public:
  TensorFileWriter();
  void add(const std::string& name, const Tensor& t);
  void add_int64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values);
  void save(const std::string& path) const;

 private:
  std::shared_ptr<io::SafetensorsWriter> writer_;
};

}  // namespace convnext
