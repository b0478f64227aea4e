#include "io/checkpoint.h"

#include "io/file_kind.h"
#include "io/json_file.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "convnext/error.h"

namespace convnext::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  fs::path p(path);
  std::error_code ec;
  fs::path single, index;
  bool bin = false, h5 = false;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "model.safetensors", ec)) single = p / "model.safetensors";
    else if (fs::exists(p / "model.safetensors.index.json", ec)) index = p / "model.safetensors.index.json";
    else if (fs::exists(p / "pytorch_model.bin", ec)) single = p / "pytorch_model.bin", bin = true;
    else if (fs::exists(p / "pytorch_model.bin.index.json", ec)) index = p / "pytorch_model.bin.index.json", bin = true;
    else if (fs::exists(p / "tf_model.h5", ec)) single = p / "tf_model.h5", h5 = true;
    else if (fs::exists(p / "tf_model.h5.index.json", ec))
      throw Error((p / "tf_model.h5.index.json").string() + ": sharded TF checkpoints are not supported; convert to safetensors");
    else {
      // One other weights file (a timm / torchvision / facebookresearch checkpoint dropped in a folder).
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        const std::string n = e.path().filename().string();
        if (e.is_regular_file(ec) && (n.ends_with(".safetensors") || n.ends_with(".bin") || n.ends_with(".pth") || n.ends_with(".pt")))
          found.push_back(e.path());
      }
      if (found.size() == 1) {
        single = found[0];
        bin = !single.string().ends_with(".safetensors");
      } else if (found.size() > 1) {
        throw Error(p.string() + ": no model.safetensors or pytorch_model.bin, and " + std::to_string(found.size()) +
                    " other weights files (" + found[0].filename().string() + ", " + found[1].filename().string() +
                    ", ...): pass the file itself");
      } else {
        throw Error(p.string() + ": no model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json or tf_model.h5 in the directory");
      }
    }
  } else if (p.string().ends_with(".index.json")) {
    index = p;
    bin = p.string().ends_with(".bin.index.json");
  } else {
    // A file named on its own may be anything (a photo passed as the model): say what it is.
    if (const std::string kind = non_checkpoint_kind(path); !kind.empty())
      throw Error(path + ": " + kind + ", not a model checkpoint");
    single = p;
    const std::string ps = p.string();
    bin = ps.ends_with(".bin") || ps.ends_with(".pth") || ps.ends_with(".pt");
    h5 = ps.ends_with(".h5");
  }
  c.origin_ = path;
  if (!single.empty()) {
    if (h5) {
      c.h5_ = TfH5File::open(single.string());
      for (const TfH5Tensor& t : c.h5_->tensors()) c.where_[t.name] = 0;
      c.format_ = "tf_model.h5 (Keras HDF5)";
    } else if (bin) {
      c.bins_.push_back(TorchBinFile::open(single.string()));
      for (const TorchTensorRecord& t : c.bins_[0]->tensors()) c.where_[t.name] = 0;
      c.format_ = single.string().ends_with(".bin") ? "pytorch_model.bin (zip + restricted pickle)"
                                                    : "torch.save " + single.extension().string() + " (zip + restricted pickle)";
    } else {
      c.files_.push_back(SafetensorsFile::open(single.string()));
      for (const TensorInfo& t : c.files_[0]->tensors()) c.where_[t.name] = 0;
      c.format_ = "safetensors";
    }
    return c;
  }
  const json j = read_json_file(index.string());
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(index.string() + ": no 'weight_map' object");
  std::map<std::string, size_t> file_index;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw Error(index.string() + ": weight_map['" + name + "'] is not a file name");
    const std::string fname = file.get<std::string>();
    if (fname.find('/') != std::string::npos || fname.find('\\') != std::string::npos || fname == ".." || fname == "." || fname.empty())
      throw Error(index.string() + ": weight_map['" + name + "'] names '" + fname + "', outside the checkpoint directory");
    auto it = file_index.find(fname);
    if (it == file_index.end()) {
      const std::string shard = (index.parent_path() / fname).string();
      if (bin) c.bins_.push_back(TorchBinFile::open(shard));
      else c.files_.push_back(SafetensorsFile::open(shard));
      it = file_index.emplace(fname, (bin ? c.bins_.size() : c.files_.size()) - 1).first;
    }
    const bool holds = bin ? c.bins_[it->second]->contains(name) : c.files_[it->second]->contains(name);
    if (!holds) throw Error(index.string() + ": weight_map puts '" + name + "' in " + fname + ", which does not hold it");
    c.where_[name] = it->second;
  }
  c.format_ = std::string(bin ? "pytorch_model.bin (zip + restricted pickle)" : "safetensors") + " (sharded, " +
              std::to_string(file_index.size()) + " files)";
  return c;
}

void Checkpoint::release_resident_pages() const {
  for (const auto& f : files_) f->release_resident_pages();
  for (const auto& f : bins_) f->release_resident_pages();
}

void Checkpoint::rename(const std::map<std::string, std::string>& hf_of, const std::map<std::string, Shape>& shape_of) {
  std::map<std::string, size_t> where;
  std::map<std::string, std::string> stored;
  std::map<std::string, Shape> reshape;
  for (const auto& [name, idx] : where_) {
    const std::string old = stored_name(name);
    auto it = hf_of.find(name);
    if (it == hf_of.end()) throw Error(origin_ + ": tensor '" + name + "' has no new name");
    const std::string& hf = it->second;
    if (!where.emplace(hf, idx).second) throw Error(origin_ + ": two tensors are renamed '" + hf + "'");
    stored[hf] = old;
    const Shape have = shape(name);
    if (auto s = shape_of.find(hf); s != shape_of.end() && s->second != have) {
      if (shape_numel(s->second) != shape_numel(have))
        throw Error(origin_ + ": tensor '" + old + "' " + shape_str(have) + " cannot be served as " + shape_str(s->second));
      reshape[hf] = s->second;
    }
  }
  where_ = std::move(where);
  stored_ = std::move(stored);
  reshape_ = std::move(reshape);
}

std::string Checkpoint::stored_name(const std::string& name) const {
  auto it = stored_.find(name);
  return it == stored_.end() ? name : it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> v;
  for (auto& [n, i] : where_) v.push_back(n);
  return v;
}

Shape Checkpoint::shape(const std::string& name) const {
  if (auto r = reshape_.find(name); r != reshape_.end()) return r->second;
  const std::string s = stored_name(name);
  if (h5_) return h5_->find(s)->tensor.shape();
  if (!bins_.empty()) return bins_.at(where_.at(name))->find(s)->shape;
  return files_.at(where_.at(name))->find(s)->shape;
}

std::string Checkpoint::dtype(const std::string& name) const {
  const std::string s = stored_name(name);
  if (h5_) return h5_->find(s)->dtype;
  if (!bins_.empty()) return bins_.at(where_.at(name))->find(s)->dtype;
  return files_.at(where_.at(name))->find(s)->dtype;
}

namespace {
std::string torch_dtype_name(const std::string& dtype) {
  if (dtype == "F32") return "float32";
  if (dtype == "F16") return "float16";
  if (dtype == "BF16") return "bfloat16";
  if (dtype == "F64") return "float64";
  std::string lower = dtype;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower;
}
}  // namespace

std::string Checkpoint::dtype_summary() const {
  std::map<std::string, int64_t> count;
  for (const auto& [name, idx] : where_) ++count[torch_dtype_name(dtype(name))];
  if (count.size() == 1) return count.begin()->first;
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [d, n] : count) order.emplace_back(-n, d);
  std::sort(order.begin(), order.end());
  std::string out;
  for (const auto& [n, d] : order) out += (out.empty() ? "" : ", ") + d + " (" + std::to_string(-n) + " tensors)";
  return out;
}

int64_t Checkpoint::file_bytes() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  for (const auto& f : bins_) paths.push_back(f->path());
  if (h5_) paths.push_back(h5_->path());
  int64_t total = 0;
  std::error_code ec;
  for (const std::string& p : paths) {
    const auto n = std::filesystem::file_size(p, ec);
    if (!ec) total += static_cast<int64_t>(n);
  }
  return total;
}

Tensor Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error(origin_ + ": no tensor named '" + name + "'");
  const std::string s = stored_name(name);
  Tensor t = h5_ ? h5_->get_f32(s) : !bins_.empty() ? bins_[it->second]->get_f32(s) : files_[it->second]->get_f32(s);
  if (auto r = reshape_.find(name); r != reshape_.end()) t = t.reshape(r->second);
  return t;
}

}  // namespace convnext::io
