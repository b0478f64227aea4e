#include "io/tf_h5.h"

#if CONVNEXT_HAVE_HDF5
#include <hdf5.h>
#endif

#include <cstring>
#include <regex>

#include "convnext/error.h"

namespace convnext::io {

namespace {

#if CONVNEXT_HAVE_HDF5
// Closes an HDF5 handle of any kind when it goes out of scope.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// One string attribute (fixed- or variable-length, scalar or 1-D) as a list of strings.
std::vector<std::string> read_string_attr(hid_t obj, const std::string& name, const std::string& where) {
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) throw Error(where + ": cannot open attribute '" + name + "'");
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_STRING)
    throw Error(where + ": attribute '" + name + "' is not a list of strings");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 24)) throw Error(where + ": attribute '" + name + "' has a bad size");
  std::vector<std::string> out;
  if (n == 0) return out;  // an empty chunk
  const htri_t var = H5Tis_variable_str(type.get());
  if (var < 0) throw Error(where + ": attribute '" + name + "' has a bad string type");
  if (var > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> buf(static_cast<size_t>(n), nullptr);
    if (H5Aread(attr.get(), mem.get(), buf.data()) < 0) throw Error(where + ": cannot read attribute '" + name + "'");
    for (char* s : buf) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, buf.data());
  } else {
    // Read with the file's own string type (same size and padding: no truncation by conversion).
    const size_t size = H5Tget_size(type.get());
    if (size == 0 || size > (1 << 20)) throw Error(where + ": attribute '" + name + "' has a bad string size");
    std::vector<char> buf(size * static_cast<size_t>(n) + 1, '\0');
    Handle mem(H5Tcopy(type.get()), H5Tclose);
    if (H5Aread(attr.get(), mem.get(), buf.data()) < 0) throw Error(where + ": cannot read attribute '" + name + "'");
    const bool spacepad = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    for (hssize_t i = 0; i < n; ++i) {
      std::string s(buf.data() + static_cast<size_t>(i) * size, size);
      if (auto z = s.find('\0'); z != std::string::npos) s.resize(z);
      if (spacepad)
        while (!s.empty() && s.back() == ' ') s.pop_back();
      out.push_back(std::move(s));
    }
  }
  return out;
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

// Keras' load_attributes_from_hdf5_group: the attribute itself, or its chunks name0, name1, ...
std::vector<std::string> read_keras_list(hid_t obj, const std::string& name, const std::string& where) {
  if (has_attr(obj, name)) return read_string_attr(obj, name, where);
  std::vector<std::string> out;
  for (int chunk = 0; has_attr(obj, name + std::to_string(chunk)); ++chunk) {
    auto part = read_string_attr(obj, name + std::to_string(chunk), where);
    out.insert(out.end(), part.begin(), part.end());
  }
  if (out.empty()) throw Error(where + ": no '" + name + "' attribute: not a Keras weights file (tf_model.h5)");
  return out;
}

bool has_child(hid_t obj, const std::string& name) {
  return H5Lexists(obj, name.c_str(), H5P_DEFAULT) > 0 && H5Oexists_by_name(obj, name.c_str(), H5P_DEFAULT) > 0;
}

// The variable's own name: "kernel", "depthwise_kernel", "gamma", ... (":0" dropped).
std::string leaf(const std::string& keras_name) {
  std::string l = keras_name.substr(keras_name.rfind('/') + 1);
  if (auto c = l.rfind(':'); c != std::string::npos) l.resize(c);
  return l;
}

#endif  // CONVNEXT_HAVE_HDF5

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t e = s.find(sep, start);
    parts.push_back(s.substr(start, e == std::string::npos ? std::string::npos : e - start));
    if (e == std::string::npos) return parts;
    start = e + 1;
  }
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

}  // namespace

std::string TfH5File::hf_name(const std::string& keras_name) {
  std::string n = keras_name;
  if (auto c = n.rfind(':'); c != std::string::npos && n.find('/', c) == std::string::npos) n.resize(c);  // ":0"
  n = replace_all(n, "_._", "/");  // older transformers wrote list indices as "stages_._0"
  std::vector<std::string> parts = split(n, '/');
  // The first component is the Keras model's name ("tf_conv_next_for_image_classification",
  // "tf_conv_next_model", with a "_1" suffix when several were built): transformers drops it.
  if (parts.size() >= 2 && parts[0] != "convnext" && parts[0] != "classifier") parts.erase(parts.begin());
  if (parts.size() < 2) return "";
  std::string& last = parts.back();
  if (last == "kernel" || last == "depthwise_kernel" || last == "gamma") last = "weight";
  else if (last == "beta") last = "bias";
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ".") + p;
  static const std::regex convnext_name(
      R"(convnext\.(embeddings\.(patch_embeddings|layernorm)\.(weight|bias)|layernorm\.(weight|bias)|)"
      R"(encoder\.stages\.\d+\.(downsampling_layer\.[01]\.(weight|bias)|)"
      R"(layers\.\d+\.((dwconv|layernorm|pwconv1|pwconv2)\.(weight|bias)|layer_scale_parameter)))|)"
      R"(classifier\.(weight|bias))");
  return std::regex_match(out, convnext_name) ? out : "";
}

const TfH5Tensor* TfH5File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor TfH5File::get_f32(const std::string& name) const {
  const TfH5Tensor* t = find(name);
  if (!t) throw Error(path_ + ": no tensor named '" + name + "'");
  return t->tensor;
}

#if CONVNEXT_HAVE_HDF5
std::shared_ptr<TfH5File> TfH5File::open(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors come back as return codes, not printed
  auto f = std::make_shared<TfH5File>();
  f->path_ = path;
  const htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0) throw Error(path + (is < 0 ? ": cannot open" : ": not an HDF5 file"));
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) throw Error(path + ": cannot open as HDF5 (truncated or corrupt file?)");
  Handle root_group(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
  if (!root_group.ok()) throw Error(path + ": cannot open the root group (truncated or corrupt file?)");
  hid_t root = root_group.get();
  std::unique_ptr<Handle> model_weights;  // model.save() puts the weights under /model_weights
  if (!has_attr(root, "layer_names") && !has_attr(root, "layer_names0") && has_child(root, "model_weights")) {
    model_weights = std::make_unique<Handle>(H5Gopen2(root, "model_weights", H5P_DEFAULT), H5Gclose);
    if (!model_weights->ok()) throw Error(path + ": cannot open group 'model_weights'");
    root = model_weights->get();
  }
  const std::vector<std::string> layers = read_keras_list(root, "layer_names", path);
  for (const std::string& layer : layers) {
    if (layer.empty() || !has_child(root, layer)) throw Error(path + ": layer '" + layer + "' of 'layer_names' has no group");
    Handle g(H5Gopen2(root, layer.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.ok()) throw Error(path + ": cannot open the group of layer '" + layer + "'");
    if (!has_attr(g.get(), "weight_names") && !has_attr(g.get(), "weight_names0")) continue;  // a layer without weights
    for (const std::string& wn : read_keras_list(g.get(), "weight_names", path + ": layer '" + layer + "'")) {
      const std::string where = path + ": dataset '" + layer + "/" + wn + "'";
      std::string hf = hf_name(wn);
      if (hf.empty())
        throw Error(where + " is not a ConvNeXT weight (expected names like 'tf_conv_next_for_image_classification/"
                            "convnext/encoder/stages.0/layers.0/dwconv/kernel:0'): not a TFConvNext checkpoint");
      if (!has_child(g.get(), wn)) throw Error(where + " is missing");
      Handle d(H5Dopen2(g.get(), wn.c_str(), H5P_DEFAULT), H5Dclose);
      if (!d.ok()) throw Error(where + ": cannot open");
      Handle type(H5Dget_type(d.get()), H5Tclose);
      Handle space(H5Dget_space(d.get()), H5Sclose);
      if (!type.ok() || !space.ok()) throw Error(where + ": cannot read its type or shape");
      if (H5Tget_class(type.get()) != H5T_FLOAT) throw Error(where + ": not a floating-point dataset");
      const size_t bytes = H5Tget_size(type.get());
      if (bytes != 2 && bytes != 4 && bytes != 8) throw Error(where + ": unsupported float size " + std::to_string(bytes));
      const int rank = H5Sget_simple_extent_ndims(space.get());
      if (rank < 0 || rank > 4) throw Error(where + ": unsupported rank " + std::to_string(rank));
      hsize_t dims[4] = {0, 0, 0, 0};
      H5Sget_simple_extent_dims(space.get(), dims, nullptr);
      Shape shape;
      int64_t numel = 1;
      for (int i = 0; i < rank; ++i) {
        if (dims[i] > (hsize_t(1) << 31)) throw Error(where + ": dimension too large");
        shape.push_back(static_cast<int64_t>(dims[i]));
        numel *= shape.back();
        if (numel > (int64_t(1) << 32)) throw Error(where + ": too many elements");
      }
      Tensor raw(shape);
      // HDF5 converts float16 / float64 to the native float on read.
      if (numel > 0 && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
        throw Error(where + ": cannot read its data (truncated or corrupt file?)");
      // Keras layout -> PyTorch layout.
      const std::string kind = leaf(wn);
      Tensor t;
      if (kind == "kernel" && rank == 4) {  // Conv2D [kh,kw,in/groups,out] -> [out,in/groups,kh,kw]
        const int64_t KH = shape[0], KW = shape[1], I = shape[2], O = shape[3];
        t = Tensor({O, I, KH, KW});
        for (int64_t h = 0; h < KH; ++h)
          for (int64_t w = 0; w < KW; ++w)
            for (int64_t i = 0; i < I; ++i)
              for (int64_t o = 0; o < O; ++o) t[((o * I + i) * KH + h) * KW + w] = raw[((h * KW + w) * I + i) * O + o];
      } else if (kind == "depthwise_kernel" && rank == 4) {  // [kh,kw,C,m] -> [C*m,1,kh,kw]
        const int64_t KH = shape[0], KW = shape[1], C = shape[2], M = shape[3];
        t = Tensor({C * M, 1, KH, KW});
        for (int64_t h = 0; h < KH; ++h)
          for (int64_t w = 0; w < KW; ++w)
            for (int64_t c = 0; c < C; ++c)
              for (int64_t m = 0; m < M; ++m) t[((c * M + m) * KH + h) * KW + w] = raw[((h * KW + w) * C + c) * M + m];
      } else if (kind == "kernel" && rank == 2) {  // Dense [in,out] -> [out,in]
        const int64_t I = shape[0], O = shape[1];
        t = Tensor({O, I});
        for (int64_t i = 0; i < I; ++i)
          for (int64_t o = 0; o < O; ++o) t[o * I + i] = raw[i * O + o];
      } else if (kind == "kernel" || kind == "depthwise_kernel") {
        throw Error(where + ": a kernel of rank " + std::to_string(rank) + " " + shape_str(shape) + " (expected 2 or 4)");
      } else {
        if (rank != 1) throw Error(where + ": shape " + shape_str(shape) + ", expected a vector");
        t = std::move(raw);
      }
      if (f->index_.count(hf)) throw Error(where + ": a second weight for '" + hf + "'");
      f->index_[hf] = f->tensors_.size();
      f->tensors_.push_back({hf, layer + "/" + wn, bytes == 2 ? "F16" : bytes == 4 ? "F32" : "F64", std::move(t)});
    }
  }
  if (f->tensors_.empty()) throw Error(path + ": no weights in this Keras h5 file");
  // TFConvNextModel (no classifier): the names of transformers' ConvNextModel, without "convnext.".
  bool head = false;
  for (const auto& t : f->tensors_) head |= t.name.starts_with("classifier.");
  if (!head) {
    f->index_.clear();
    for (size_t i = 0; i < f->tensors_.size(); ++i) {
      std::string& n = f->tensors_[i].name;
      if (n.starts_with("convnext.")) n = n.substr(9);
      f->index_[n] = i;
    }
  }
  return f;
}
#else  // built without libhdf5 (-DCONVNEXT_WITH_HDF5=OFF, or libhdf5 not found)
std::shared_ptr<TfH5File> TfH5File::open(const std::string& path) {
  throw Error(path + ": tf_model.h5 needs HDF5 support: rebuild with libhdf5-dev installed and -DCONVNEXT_WITH_HDF5=ON");
}
#endif  // CONVNEXT_HAVE_HDF5

}  // namespace convnext::io
