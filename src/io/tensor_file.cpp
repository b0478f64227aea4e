// TensorFile / TensorFileWriter (include/convnext/tensor.h): the public face of the safetensors
// reader and writer, for programs that exchange tensors with Python (pixel_values, labels).
#include <algorithm>

#include "convnext/error.h"
#include "convnext/tensor.h"
#include "io/safetensors.h"

namespace convnext {

namespace {
const io::TensorInfo& info_of(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo* t = f.find(name);
  if (!t) throw Error(f.path() + ": no tensor named '" + name + "'");
  return *t;
}
}  // namespace

TensorFile TensorFile::open(const std::string& path) {
  TensorFile f;
  f.file_ = io::SafetensorsFile::open(path);
  return f;
}

const std::string& TensorFile::path() const { return file_->path(); }

std::vector<std::string> TensorFile::names() const {
  std::vector<const io::TensorInfo*> by_offset;
  for (const io::TensorInfo& t : file_->tensors()) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const io::TensorInfo* a, const io::TensorInfo* b) { return a->begin < b->begin; });
  std::vector<std::string> out;
  for (const io::TensorInfo* t : by_offset) out.push_back(t->name);
  return out;
}

bool TensorFile::contains(const std::string& name) const { return file_->contains(name); }
std::string TensorFile::dtype(const std::string& name) const { return info_of(*file_, name).dtype; }
Shape TensorFile::shape(const std::string& name) const { return info_of(*file_, name).shape; }

bool TensorFile::is_floating(const std::string& name) const {
  const std::string d = dtype(name);
  return d == "F32" || d == "F16" || d == "BF16" || d == "F64";
}

Tensor TensorFile::get(const std::string& name) const { return file_->get_f32(name); }
std::vector<int64_t> TensorFile::get_int64(const std::string& name) const { return file_->get_i64(name); }

TensorFileWriter::TensorFileWriter() : writer_(std::make_shared<io::SafetensorsWriter>()) {}
void TensorFileWriter::add(const std::string& name, const Tensor& t) { writer_->add(name, t); }
void TensorFileWriter::add_int64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values) {
  writer_->add_i64(name, shape, values);
}
void TensorFileWriter::save(const std::string& path) const { writer_->save(path); }

}  // namespace convnext
