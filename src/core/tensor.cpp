#include "convnext/tensor.h"

#include <algorithm>
#include <cstring>

#include "convnext/error.h"

namespace convnext {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor::Tensor(Shape shape) : shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0) throw Error("tensor shape " + shape_str(shape_) + " has a negative dimension");
  // 64-byte aligned so the AVX-512 kernels may use aligned loads on fresh tensors.
  const size_t bytes = static_cast<size_t>(numel()) * sizeof(float);
  const size_t rounded = (bytes + 63) / 64 * 64;
  // 128 bytes to spare: a weight tensor freed once packed leaves a chunk that glibc can hand to the
  // next 64-byte-aligned request of the same size (aligned_alloc needs that much room to align).
  void* p = rounded ? std::aligned_alloc(64, rounded + 128) : nullptr;
  if (rounded && !p) throw Error("out of memory allocating a tensor of shape " + shape_str(shape_));
  if (p) std::memset(p, 0, rounded);
  owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  data_ = static_cast<float*>(p);
  if (!data_) {  // zero elements: keep a non-null, valid pointer
    static float dummy[1];
    data_ = dummy;
  }
}

Tensor::Tensor(Shape shape, const std::vector<float>& values) : Tensor(std::move(shape)) {
  if (static_cast<int64_t>(values.size()) != numel())
    throw Error("tensor of shape " + shape_str(shape_) + " given " + std::to_string(values.size()) + " values");
  if (!values.empty()) std::memcpy(data_, values.data(), values.size() * sizeof(float));
}

Tensor Tensor::borrow(Shape shape, float* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.owner_ = std::move(owner);
  t.borrowed_ = true;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (numel()) std::memcpy(t.data_, data_, static_cast<size_t>(numel()) * sizeof(float));
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel())
    throw Error("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor stack(const std::vector<Tensor>& items) {
  if (items.empty()) throw Error("stack: no tensors");
  const Shape& s = items[0].shape();
  Shape out = {static_cast<int64_t>(items.size())};
  out.insert(out.end(), s.begin(), s.end());
  Tensor batch(out);
  const int64_t per = shape_numel(s);
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].shape() != s)
      throw Error("stack: tensor " + std::to_string(i) + " has shape " + shape_str(items[i].shape()) + ", tensor 0 " +
                  shape_str(s));
    std::copy(items[i].data(), items[i].data() + per, batch.data() + static_cast<int64_t>(i) * per);
  }
  return batch;
}

}  // namespace convnext
