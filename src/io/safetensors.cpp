#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "convnext/error.h"

namespace convnext::io {

using json = nlohmann::json;

size_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        --exp;
      }
      man &= 0x3ffu;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t b = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((b >> 16) | 0x40u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

uint16_t f32_to_f16(float f) {
  const uint32_t b = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t absb = b & 0x7fffffffu;
  if (absb >= 0x7f800000u) return sign | (absb > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (absb >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (absb < 0x38800000u) {                         // below the smallest normal half: subnormal
    const float a = std::bit_cast<float>(absb);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // a / 2^-24
  }
  uint32_t r = absb + 0xfffu + ((absb >> 13) & 1u) - (112u << 23);
  return sign | static_cast<uint16_t>(r >> 13);
}

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::make_shared<SafetensorsFile>();
  f->file_ = MappedFile::open(path);
  const size_t fsize = f->file_->size();
  const uint8_t* base = f->file_->data();
  if (fsize < 8) fail(path, "not a safetensors file (" + std::to_string(fsize) + " bytes, shorter than the header length)");
  const uint64_t hlen = read_u64_le(base);
  if (hlen > fsize - 8)
    fail(path, "truncated or not a safetensors file: header length " + std::to_string(hlen) + " exceeds the file size " +
                   std::to_string(fsize));
  if (hlen > 100u * 1024 * 1024) fail(path, "safetensors header of " + std::to_string(hlen) + " bytes is too large");
  json h;
  try {
    h = json::parse(base + 8, base + 8 + hlen);
  } catch (const json::exception& e) {
    fail(path, std::string("safetensors header is not valid JSON (") + e.what() + ")");
  }
  if (!h.is_object()) fail(path, "safetensors header is not a JSON object");
  f->data_start_ = 8 + static_cast<size_t>(hlen);
  const uint64_t buffer = fsize - f->data_start_;

  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto& [k, m] : v.items())
        if (m.is_string()) f->metadata_[k] = m.get<std::string>();
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(path, where + " needs dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) fail(path, where + ": dtype is not a string");
    TensorInfo t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    const size_t esize = dtype_size(t.dtype);
    if (esize == 0) fail(path, where + " has unknown dtype '" + t.dtype + "'");
    if (!v["shape"].is_array()) fail(path, where + ": shape is not a list");
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(path, where + ": shape " + v["shape"].dump() + " is not a list of non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim)
        fail(path, where + ": shape " + v["shape"].dump() + " is too large");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets must be two non-negative integers");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.end < t.begin) fail(path, where + ": data_offsets [" + std::to_string(t.begin) + "," + std::to_string(t.end) + "] end before they begin");
    if (t.end > buffer)
      fail(path, where + ": data_offsets [" + std::to_string(t.begin) + "," + std::to_string(t.end) +
                     "] point past the end of the file (data section is " + std::to_string(buffer) + " bytes; truncated file?)");
    if (t.end - t.begin != numel * esize)
      fail(path, where + ": " + std::to_string(t.end - t.begin) + " bytes for shape " + shape_str(t.shape) + " of " +
                     t.dtype + " (expected " + std::to_string(numel * esize) + ")");
    f->tensors_.push_back(std::move(t));
  }
  // The data buffer must be covered exactly, tensor after tensor, with no overlap and no gap.
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : f->tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < pos)
      fail(path, "tensor '" + t->name + "' data_offsets [" + std::to_string(t->begin) + "," + std::to_string(t->end) +
                     "] overlap tensor '" + prev->name + "'");
    if (t->begin > pos) fail(path, "gap in the data section before tensor '" + t->name + "'");
    pos = t->end;
    prev = t;
  }
  if (pos != buffer) fail(path, "data section has " + std::to_string(buffer - pos) + " bytes after the last tensor");
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor SafetensorsFile::get_f32(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(path(), "no tensor named '" + name + "'");
  uint8_t* src = file_->data() + data_start_ + t->begin;
  const int64_t n = shape_numel(t->shape);
  if (t->dtype == "F32") {
    if (reinterpret_cast<uintptr_t>(src) % alignof(float) == 0)
      return Tensor::borrow(t->shape, reinterpret_cast<float*>(src), file_);
    Tensor out(t->shape);
    std::memcpy(out.data(), src, static_cast<size_t>(n) * 4);
    return out;
  }
  Tensor out(t->shape);
  float* dst = out.data();
  if (t->dtype == "F16" || t->dtype == "BF16") {
    const bool half = t->dtype == "F16";
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      dst[i] = half ? f16_to_f32(v) : bf16_to_f32(v);
    }
  } else if (t->dtype == "F64") {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, src + 8 * i, 8);
      dst[i] = static_cast<float>(v);
    }
  } else {
    fail(path(), "tensor '" + name + "' has dtype " + t->dtype + ", expected a floating-point type (F32, F16, BF16, F64)");
  }
  return out;
}

std::vector<int64_t> SafetensorsFile::get_i64(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(path(), "no tensor named '" + name + "'");
  const uint8_t* src = file_->data() + data_start_ + t->begin;
  const int64_t n = shape_numel(t->shape);
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (t->dtype == "I64") {
      int64_t v;
      std::memcpy(&v, src + 8 * i, 8);
      out[static_cast<size_t>(i)] = v;
    } else if (t->dtype == "I32") {
      int32_t v;
      std::memcpy(&v, src + 4 * i, 4);
      out[static_cast<size_t>(i)] = v;
    } else if (t->dtype == "I16") {
      int16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      out[static_cast<size_t>(i)] = v;
    } else if (t->dtype == "I8") {
      out[static_cast<size_t>(i)] = static_cast<int8_t>(src[i]);
    } else if (t->dtype == "U8") {
      out[static_cast<size_t>(i)] = src[i];
    } else {
      fail(path(), "tensor '" + name + "' has dtype " + t->dtype + ", expected an integer type (I64, I32, I16, I8, U8)");
    }
  }
  return out;
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  Entry e{name, "F32", t.shape(), {}};
  e.bytes.resize(static_cast<size_t>(t.numel()) * 4);
  if (t.numel()) std::memcpy(e.bytes.data(), t.data(), e.bytes.size());
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add_f16(const std::string& name, const Tensor& t) {
  Entry e{name, "F16", t.shape(), {}};
  e.bytes.resize(static_cast<size_t>(t.numel()) * 2);
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint16_t v = f32_to_f16(t[i]);
    std::memcpy(e.bytes.data() + 2 * i, &v, 2);
  }
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add_bf16(const std::string& name, const Tensor& t) {
  Entry e{name, "BF16", t.shape(), {}};
  e.bytes.resize(static_cast<size_t>(t.numel()) * 2);
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint16_t v = f32_to_bf16(t[i]);
    std::memcpy(e.bytes.data() + 2 * i, &v, 2);
  }
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values) {
  if (shape_numel(shape) != static_cast<int64_t>(values.size()))
    throw Error("tensor '" + name + "': " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  Entry e{name, "I64", shape, {}};
  e.bytes.resize(values.size() * 8);
  if (!values.empty()) std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::save(const std::string& path) const {
  json h = json::object();
  uint64_t off = 0;
  for (const Entry& e : entries_) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  std::string header = h.dump();
  while (header.size() % 8) header.push_back(' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot write");
    uint8_t len[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const Entry& e : entries_) out.write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
    if (!out) throw Error(path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(path + ": cannot rename the written file (" + ec.message() + ")");
}

}  // namespace convnext::io

namespace convnext {

Tensor load_tensor(const std::string& path, const std::string& name) {
  auto f = io::SafetensorsFile::open(path);
  return f->get_f32(name);
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  io::SafetensorsWriter w;
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.save(path);
}

}  // namespace convnext
