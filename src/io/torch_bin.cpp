#include "io/torch_bin.h"

#include <cstring>

#include "convnext/error.h"
#include "io/safetensors.h"

namespace convnext::io {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }
}  // namespace

std::shared_ptr<TorchBinFile> TorchBinFile::open(const std::string& path) {
  auto f = std::make_shared<TorchBinFile>();
  f->zip_ = ZipReader::open(path);
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : f->zip_->entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (pkl) fail(path, "more than one data.pkl in the archive");
      pkl = &e;
      f->archive_ = e.name.substr(0, slash);
    }
  }
  if (!pkl) fail(path, "no <archive>/data.pkl in the zip (not a torch.save file, or saved with the legacy non-zip format)");
  const ZipData d = f->zip_->read(*pkl);
  f->tensors_ = unpickle_state_dict(d.data, static_cast<size_t>(d.size), path);
  // Every storage must exist and hold exactly its declared number of elements.
  std::map<std::string, std::pair<std::string, uint64_t>> seen;
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const TorchTensorRecord& t = f->tensors_[i];
    f->index_[t.name] = i;
    auto [it, fresh] = seen.emplace(t.storage_key, std::make_pair(t.dtype, t.storage_numel));
    if (!fresh && it->second != std::make_pair(t.dtype, t.storage_numel))
      fail(path, "storage '" + t.storage_key + "' is declared twice with different types or sizes");
    if (!fresh) continue;
    const std::string entry = f->archive_ + "/data/" + t.storage_key;
    const ZipEntry* e = f->zip_->find(entry);
    if (!e) fail(path, "tensor '" + t.name + "': storage entry '" + entry + "' is missing from the archive");
    const uint64_t esize = dtype_size(t.dtype);
    if (t.storage_numel > e->size / esize || e->size != t.storage_numel * esize)
      fail(path, "tensor '" + t.name + "': storage '" + entry + "' has " + std::to_string(e->size) + " bytes, expected " +
                     std::to_string(t.storage_numel) + " elements of " + t.dtype);
  }
  return f;
}

const TorchTensorRecord* TorchBinFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor TorchBinFile::get_f32(const std::string& name) const {
  const TorchTensorRecord* t = find(name);
  if (!t) fail(path(), "no tensor named '" + name + "'");
  if (t->dtype != "F32" && t->dtype != "F16" && t->dtype != "BF16")
    fail(path(), "tensor '" + name + "' has dtype " + t->dtype + ", expected a floating-point type (F32, F16, BF16)");
  const ZipData d = zip_->read(*zip_->find(archive_ + "/data/" + t->storage_key));
  const size_t es = dtype_size(t->dtype);
  const int64_t n = shape_numel(t->shape);
  // Contiguous row-major?
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t j = t->shape.size(); j-- > 0;) {
    if (t->shape[j] != 1 && t->stride[j] != expect) contiguous = false;
    expect *= t->shape[j];
  }
  const uint8_t* base = d.data + t->offset * es;  // bounds checked by the unpickler and open()
  if (contiguous && t->dtype == "F32" && d.borrowed && reinterpret_cast<uintptr_t>(base) % alignof(float) == 0 && n > 0)
    return Tensor::borrow(t->shape, reinterpret_cast<float*>(const_cast<uint8_t*>(base)), d.owner);
  Tensor out(t->shape);
  float* dst = out.data();
  const size_t nd = t->shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t src = 0;  // element offset from base
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = base + static_cast<size_t>(src) * es;
    if (t->dtype == "F32") {
      std::memcpy(&dst[i], p, 4);
    } else {
      uint16_t v;
      std::memcpy(&v, p, 2);
      dst[i] = t->dtype == "F16" ? f16_to_f32(v) : bf16_to_f32(v);
    }
    for (size_t j = nd; j-- > 0;) {  // odometer over the indices
      src += t->stride[j];
      if (++idx[j] < t->shape[j]) break;
      src -= t->stride[j] * t->shape[j];
      idx[j] = 0;
    }
  }
  return out;
}

}  // namespace convnext::io
