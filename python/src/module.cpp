// convnext._core: the public C++ API (include/convnext/) for Python. Thin on purpose: numpy in,
// numpy out, the GIL released around every call that computes or reads files; the transformers-
// shaped classes are Python (convnext/__init__.py) over these.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convnext/convnext.h"

namespace py = pybind11;
using namespace convnext;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// A Tensor as a numpy array that owns it (no copy; the array keeps the Tensor alive).
py::array to_numpy(Tensor t) {
  auto* owned = new Tensor(std::move(t));
  py::capsule free_it(owned, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(owned->shape().begin(), owned->shape().end());
  return py::array_t<float>(shape, owned->data(), free_it);
}

// A float32 C-contiguous array read in place (forcecast converted anything else once, above).
Tensor view_of(const FloatArray& a) {
  Shape shape(a.shape(), a.shape() + a.ndim());
  return Tensor::borrow(shape, const_cast<float*>(a.data()), nullptr);
}

DType dtype_of(const std::string& name) { return parse_dtype(name); }

LoadOptions load_options(const std::string& dtype, bool inference_only, std::optional<int64_t> num_labels,
                         bool ignore_mismatched_sizes) {
  LoadOptions o;
  o.precision = dtype_of(dtype);
  o.inference_only = inference_only;
  o.num_labels = num_labels;
  o.ignore_mismatched_sizes = ignore_mismatched_sizes;
  return o;
}

ExecutionContext context(std::optional<int> threads) {
  ExecutionContext c;
  c.threads = threads.value_or(0);
  return c;
}

py::dict tensors(const std::vector<Tensor>& ts, const char* prefix, py::dict d) {
  py::list l;
  for (const Tensor& t : ts) l.append(to_numpy(t));
  d[prefix] = py::tuple(l);
  return d;
}

// One of the three classes behind one Python type: which is chosen by `arch`.
class Model {
 public:
  Model(const std::string& path, const std::string& arch, const std::string& dtype, std::optional<int> threads,
        bool inference_only, std::optional<int64_t> num_labels, bool ignore_mismatched_sizes)
      : threads_(threads) {
    const LoadOptions o = load_options(dtype, inference_only, num_labels, ignore_mismatched_sizes);
    py::gil_scoped_release nogil;
    if (arch == "model") model_ = std::make_unique<ConvNextModel>(ConvNextModel::from_pretrained(path, o));
    else if (arch == "backbone") backbone_ = std::make_unique<ConvNextBackbone>(ConvNextBackbone::from_pretrained(path, o));
    else classifier_ = std::make_unique<ConvNextForImageClassification>(ConvNextForImageClassification::from_pretrained(path, o));
  }

  // Freshly initialised weights for a config (transformers' Model(config)).
  Model(const std::string& config_json, const std::string& arch, uint64_t seed, std::optional<int> threads)
      : threads_(threads) {
    const ConvNextConfig c = ConvNextConfig::from_json_string(config_json, "config");
    if (arch == "model") model_ = std::make_unique<ConvNextModel>(c, seed, false);
    else if (arch == "backbone") backbone_ = std::make_unique<ConvNextBackbone>(c, seed, false);
    else classifier_ = std::make_unique<ConvNextForImageClassification>(c, seed, false);
  }

  const detail::ModelBase& base() const {
    if (model_) return *model_;
    if (backbone_) return *backbone_;
    return *classifier_;
  }

  py::dict forward(const FloatArray& pixels, std::optional<py::object> labels, bool hidden) const {
    const Tensor px = view_of(pixels);
    std::optional<Labels> lab;
    if (labels && !labels->is_none()) lab = labels_of(*labels);
    const ExecutionContext ctx = context(threads_);
    py::dict d;
    if (model_) {
      ModelOutput out;
      {
        py::gil_scoped_release nogil;
        out = model_->forward(px, hidden, ctx);
      }
      d["last_hidden_state"] = to_numpy(std::move(out.last_hidden_state));
      d["pooler_output"] = to_numpy(std::move(out.pooler_output));
      if (hidden) tensors(out.hidden_states, "hidden_states", d);
    } else if (backbone_) {
      BackboneOutput out;
      {
        py::gil_scoped_release nogil;
        out = backbone_->forward(px, hidden, ctx);
      }
      tensors(out.feature_maps, "feature_maps", d);
      if (hidden) tensors(out.hidden_states, "hidden_states", d);
    } else {
      ImageClassifierOutput out;
      {
        py::gil_scoped_release nogil;
        out = classifier_->forward(px, lab ? &*lab : nullptr, hidden, ctx);
      }
      d["logits"] = to_numpy(std::move(out.logits));
      d["pooler_output"] = to_numpy(std::move(out.pooler_output));
      d["last_hidden_state"] = to_numpy(std::move(out.last_hidden_state));
      if (out.loss) {
        d["loss"] = *out.loss;
        d["problem_type"] = out.problem_type;
      }
      if (hidden) tensors(out.hidden_states, "hidden_states", d);
    }
    return d;
  }

  // Integer labels (any integer dtype) are class ids; float labels are values.
  static Labels labels_of(const py::object& o) {
    py::array a = py::array::ensure(o);
    if (!a) throw Error("labels must be an array of class ids or of floats");
    if (a.dtype().kind() == 'f') {
      const FloatArray f = a.cast<FloatArray>();
      return Labels::floats(Tensor(Shape(f.shape(), f.shape() + f.ndim()), std::vector<float>(f.data(), f.data() + f.size())));
    }
    if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') throw Error("labels must be integers (class ids) or floats");
    const auto ids = a.cast<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>();
    return Labels::classes(std::vector<int64_t>(ids.data(), ids.data() + ids.size()));
  }

  std::string config_json() const { return base().config().to_json_string(); }
  int64_t num_parameters() const { return base().num_parameters(); }
  std::vector<std::string> warnings() const { return base().load_warnings(); }
  std::string precision() const { return dtype_short_name(base().precision()); }
  void save_pretrained(const std::string& dir, const std::string& dtype) const {
    py::gil_scoped_release nogil;
    base().save_pretrained(dir, dtype);
  }

  // The pipeline's top k of each row of logits: [(label, index, score), ...] per row.
  std::vector<std::vector<std::tuple<std::string, int64_t, float>>> top_k(const FloatArray& logits, int64_t k,
                                                                         const std::string& function) const {
    const ScoreFunction f = function == "auto" ? ScoreFunction::Auto : parse_score_function(function);
    const auto preds = top_predictions(view_of(logits), base().config(), k, f);
    std::vector<std::vector<std::tuple<std::string, int64_t, float>>> out;
    for (const auto& row : preds) {
      out.emplace_back();
      for (const Prediction& p : row) out.back().emplace_back(p.label, p.index, p.score);
    }
    return out;
  }

 private:
  std::optional<int> threads_;
  std::unique_ptr<ConvNextModel> model_;
  std::unique_ptr<ConvNextBackbone> backbone_;
  std::unique_ptr<ConvNextForImageClassification> classifier_;
};

ImageU8 image_of(const ByteArray& a) {
  if (a.ndim() != 2 && a.ndim() != 3) throw Error("an image array must be HWC (or HW): got " + std::to_string(a.ndim()) + " dimensions");
  ImageU8 img;
  img.height = a.shape(0);
  img.width = a.shape(1);
  img.channels = a.ndim() == 3 ? a.shape(2) : 1;
  if (img.channels != 1 && img.channels != 3)
    throw Error("an image array must have 1 or 3 channels (HWC uint8), got " + std::to_string(img.channels));
  img.pixels.assign(a.data(), a.data() + a.size());
  return img;
}

py::array numpy_image(ImageU8 img) {
  auto* owned = new ImageU8(std::move(img));
  py::capsule free_it(owned, [](void* p) { delete static_cast<ImageU8*>(p); });
  return py::array_t<uint8_t>({static_cast<py::ssize_t>(owned->height), static_cast<py::ssize_t>(owned->width),
                               static_cast<py::ssize_t>(owned->channels)},
                              owned->pixels.data(), free_it);
}

class Processor {
 public:
  Processor(const std::string& config_json, const std::string& backend)
      : p_(ImageProcessorConfig::from_json_string(config_json, "ConvNextImageProcessor(**kwargs)"), backend_of(backend)) {}
  static Processor from_pretrained(const std::string& path, const std::string& backend) {
    py::gil_scoped_release nogil;
    return Processor(ConvNextImageProcessor::from_pretrained(path, backend_of(backend)));
  }
  std::string config_json() const { return p_.config().to_json_string(); }
  int64_t channels() const { return p_.channels(); }
  int64_t channels_for(int64_t model_channels) const { return p_.channels_for(model_channels); }

  // HWC uint8 images → [N, C, S, S].
  py::array preprocess(const std::vector<ByteArray>& arrays) const {
    std::vector<ImageU8> images;
    for (const ByteArray& a : arrays) images.push_back(image_of(a));
    Tensor t;
    {
      py::gil_scoped_release nogil;
      t = p_.preprocess(images);
    }
    return to_numpy(std::move(t));
  }
  void save_pretrained(const std::string& dir) const { p_.save_pretrained(dir); }

 private:
  explicit Processor(ConvNextImageProcessor p) : p_(std::move(p)) {}
  static ImageBackend backend_of(const std::string& b) {
    if (b == "pil") return ImageBackend::Pil;
    if (b == "torchvision") return ImageBackend::Torchvision;
    throw Error("backend must be 'pil' or 'torchvision', not '" + b + "'");
  }
  ConvNextImageProcessor p_;
};

// The decoders: files and encoded bytes → HWC uint8, as transformers' load_image (EXIF, RGB or L).
py::array load_image(const std::string& path, int64_t channels, int64_t max_pixels) {
  DecodeSettings s;
  s.max_pixels = max_pixels;
  ImageU8 img;
  {
    py::gil_scoped_release nogil;
    img = ConvNextImageProcessor::load_image(path, channels, s);
  }
  return numpy_image(std::move(img));
}

py::array decode_image(const py::bytes& data, int64_t channels, int64_t max_pixels) {
  DecodeSettings s;
  s.max_pixels = max_pixels;
  const std::string_view v = data;
  ImageU8 img;
  {
    py::gil_scoped_release nogil;
    img = ConvNextImageProcessor::decode_image(v.data(), v.size(), "image", channels, s);
  }
  return numpy_image(std::move(img));
}

// convnext.train(**options): the keyword arguments are `convnext train`'s flags with '_' for '-'
// (model, data, output, epochs, steps, batch_size, lr, lr_scheduler, no_shuffle, ...). Each given
// one counts as given on the command line (resuming keeps the rest of the run's settings).
TrainOptions train_options(const py::dict& kw) {
  TrainOptions o;
  for (const auto& [k, v] : kw) {
    const std::string key = py::str(k);
    std::string flag = key;
    for (char& c : flag)
      if (c == '_') c = '-';
    auto str = [&] { return py::str(v).cast<std::string>(); };
    auto i64 = [&] { return v.cast<int64_t>(); };
    auto dbl = [&] { return v.cast<double>(); };
    auto flag_on = [&] { return v.cast<bool>(); };
    if (key == "model") o.model_dir = str();
    else if (key == "config") o.config_path = str();
    else if (key == "arch") o.arch = str();
    else if (key == "resume") o.resume_dir = str();
    else if (key == "num_labels") o.num_labels = i64();
    else if (key == "processor") o.processor_path = str();
    else if (key == "drop_path_rate") o.drop_path_rate = dbl();
    else if (key == "data") o.data = str();
    else if (key == "eval_data") o.eval_data = str();
    else if (key == "output" || key == "output_dir") o.output = str(), flag = "output";
    else if (key == "epochs") o.epochs = i64();
    else if (key == "steps") o.steps = i64();
    else if (key == "batch_size") o.batch_size = i64();
    else if (key == "grad_accum") o.grad_accum = i64();
    else if (key == "lr") o.lr = dbl();
    else if (key == "weight_decay") o.weight_decay = dbl();
    else if (key == "lr_scheduler") o.scheduler = str();
    else if (key == "warmup_steps") o.warmup_steps = i64();
    else if (key == "max_grad_norm") o.max_grad_norm = dbl();
    else if (key == "seed") o.seed = static_cast<uint64_t>(i64());
    else if (key == "save_grads") o.save_grads = str();
    else if (key == "save_every") o.save_every = i64();
    else if (key == "threads") o.threads = static_cast<int>(i64());
    else if (key == "workers") o.workers = static_cast<int>(i64());
    else if (key == "crop_scale") o.crop_scale_min = dbl();
    else if (key == "log_every") o.log_every = i64();
    else if (key == "dtype") o.precision = parse_dtype(str());
    else if (key == "ignore_mismatched_sizes") o.ignore_mismatched_sizes = flag_on();
    else if (key == "weight_decay_all") o.weight_decay_all = flag_on();
    else if (key == "no_shuffle") o.shuffle = !flag_on();
    else if (key == "no_augment") o.augment = !flag_on();
    else if (key == "no_flip") o.hflip = !flag_on();
    else if (key == "skip_nan") o.skip_nan = flag_on();
    else throw Error("unknown training option '" + key + "' (the options are `convnext train --help`'s, with _ for -)");
    o.given.insert(flag);
  }
  if (o.epochs && o.steps) throw Error("give epochs or steps, not both");
  if (o.scheduler != "constant" && o.scheduler != "linear" && o.scheduler != "cosine")
    throw Error("lr_scheduler must be constant, linear or cosine, got '" + o.scheduler + "'");
  if (o.threads < 0 || o.threads > 1024) throw Error("threads must be 0 (automatic) or 1 … 1024");
  return o;
}

// Runs the training with the GIL released; each log.jsonl line goes to `on_log` (with the GIL).
int train(const py::dict& kw, py::object on_log) {
  TrainOptions o = train_options(kw);
  if (!on_log.is_none())
    o.on_log = [on_log](const std::string& line) {
      py::gil_scoped_acquire gil;
      on_log(line);
    };
  py::gil_scoped_release nogil;
  if (o.threads > 0) set_num_threads(o.threads);
  return run_training(o);
}

// A message that names a missing file becomes FileNotFoundError, as Python's own I/O would.
bool names_a_missing_file(std::string m) {
  for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* s : {"no such file or directory", "not in the hugging face cache", "cannot open"})
    if (m.find(s) != std::string::npos) return true;
  return false;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "convnext's C++ engine (the public API of libconvnext); use the classes of the convnext package.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      if (names_a_missing_file(e.what())) PyErr_SetString(PyExc_FileNotFoundError, e.what());
      else PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<Model>(m, "Model")
      .def(py::init<const std::string&, const std::string&, const std::string&, std::optional<int>, bool,
                    std::optional<int64_t>, bool>(),
           py::arg("path"), py::arg("arch"), py::arg("dtype") = "float32", py::arg("num_threads") = py::none(),
           py::arg("inference_only") = true, py::arg("num_labels") = py::none(),
           py::arg("ignore_mismatched_sizes") = false)
      .def(py::init<const std::string&, const std::string&, uint64_t, std::optional<int>>(), py::arg("config_json"),
           py::arg("arch"), py::arg("seed"), py::arg("num_threads") = py::none())
      .def("forward", &Model::forward, py::arg("pixel_values"), py::arg("labels") = py::none(),
           py::arg("output_hidden_states") = false)
      .def("config_json", &Model::config_json)
      .def("num_parameters", &Model::num_parameters)
      .def("warnings", &Model::warnings)
      .def("precision", &Model::precision)
      .def("save_pretrained", &Model::save_pretrained, py::arg("directory"), py::arg("dtype") = "float32")
      .def("top_k", &Model::top_k, py::arg("logits"), py::arg("k"), py::arg("function") = "auto");

  py::class_<Processor>(m, "Processor")
      .def(py::init<const std::string&, const std::string&>(), py::arg("config_json"), py::arg("backend") = "pil")
      .def_static("from_pretrained", &Processor::from_pretrained, py::arg("path"), py::arg("backend") = "pil")
      .def("config_json", &Processor::config_json)
      .def("channels", &Processor::channels)
      .def("channels_for", &Processor::channels_for)
      .def("preprocess", &Processor::preprocess, py::arg("images"))
      .def("save_pretrained", &Processor::save_pretrained);

  m.def("load_image", &load_image, py::arg("path"), py::arg("channels") = 3, py::arg("max_pixels") = 89478485);
  m.def("decode_image", &decode_image, py::arg("data"), py::arg("channels") = 3, py::arg("max_pixels") = 89478485);
  m.def("config_of_checkpoint", [](const std::string& path) {
    py::gil_scoped_release nogil;
    return config_of_checkpoint(path).to_json_string();
  });
  m.def("config_from_json", [](const std::string& text) {
    ConvNextConfig c = ConvNextConfig::from_json_string(text, "ConvNextConfig(**kwargs)");
    return c.to_json_string();
  });
  m.def("train", &train, py::arg("options"), py::arg("on_log") = py::none());
  m.def("version", [] { return std::string(version()); });
  m.def("kernel_family", [] { return kernel_family_name(); });
  m.def("set_num_threads", &set_num_threads);
  m.def("num_threads", &num_threads);
}
