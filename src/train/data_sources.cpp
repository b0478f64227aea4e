// DataSource::open and the sources behind it. Everything that can be checked without decoding
// images is checked at open (labels against num_labels, channel counts, idx sizes), so that a
// bad data set fails before the first step rather than hours into training; only the image
// files themselves are read lazily, and one that cannot be read is UnreadableImage.
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <utility>

#include "convnext/classifier.h"  // is_image_file_name
#include "io/safetensors.h"
#include "train/data.h"

namespace convnext::train {

namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool parse_int(const std::string& s, int64_t& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool is_image_file(const fs::path& p) { return is_image_file_name(p.string()); }

// `message` with `file` in front, unless it names the file already (the decoder's do).
std::string naming(const std::string& file, const std::string& message) {
  return message.rfind(file, 0) == 0 ? message : file + ": " + message;
}

// The channels images are decoded to; they must be what the model takes.
int64_t image_channels(const ConvNextImageProcessor& processor, int64_t model_channels, const std::string& origin) {
  const int64_t c = processor.channels_for(model_channels);
  if (c != model_channels)
    throw Error(origin + ": the model takes " + std::to_string(model_channels) + " input channels but its image processor gives " +
                std::to_string(c) + " (image_mean/image_std have " + std::to_string(processor.config().image_mean.size()) +
                " entries)");
  return c;
}

// Class ids must name one of the model's labels; -100 is transformers' "ignore this example".
void check_label(int64_t label, int64_t num_labels, const std::string& where) {
  if (label == -100) return;
  if (label < 0 || (num_labels > 0 && label >= num_labels))
    throw Error(where + ": label " + std::to_string(label) + " is out of range " +
                (num_labels > 0 ? "for a model with " + std::to_string(num_labels) + " labels"
                                : "(class ids are >= 0, or -100 to ignore)"));
}

void check_count(const std::vector<std::string>& classes, int64_t num_labels, const std::string& origin) {
  if (num_labels > 0 && static_cast<int64_t>(classes.size()) > num_labels)
    throw Error(origin + ": " + std::to_string(classes.size()) + " classes but the model has " + std::to_string(num_labels) +
                " labels");
}

// ---- image files: ImageFolder and CSV ---------------------------------------

class ImageFileSource final : public DataSource {
 public:
  ImageFileSource(std::string origin, std::vector<std::string> files, std::vector<int64_t> labels,
                  std::vector<std::string> names, const ConvNextImageProcessor& processor, int64_t channels)
      : origin_(std::move(origin)), files_(std::move(files)), labels_(std::move(labels)), names_(std::move(names)),
        processor_(processor), channels_(channels) {}

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  std::vector<std::string> class_names() const override { return names_; }
  std::string origin() const override { return origin_; }

  Example get(int64_t i, const Augment& augment, std::mt19937_64& rng) const override {
    const std::string& file = files_.at(static_cast<size_t>(i));
    ImageU8 img;
    try {
      img = ConvNextImageProcessor::load_image(file, channels_);
    } catch (const Error& e) {
      throw UnreadableImage(naming(file, e.what()));
    }
    Example ex;
    try {
      ex.pixels = preprocess_example(std::move(img), processor_, augment, rng);
    } catch (const Error& e) {
      throw Error(naming(file, e.what()));  // a processing problem, not an unreadable file: it stops the loader
    }
    ex.label = labels_[static_cast<size_t>(i)];
    return ex;
  }

 private:
  std::string origin_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
  std::vector<std::string> names_;
  ConvNextImageProcessor processor_;  // a copy: the source may outlive the caller's
  int64_t channels_;
};

std::unique_ptr<DataSource> open_image_folder(const std::string& path, const ConvNextImageProcessor& processor,
                                              int64_t model_channels, int64_t num_labels) {
  std::vector<fs::path> class_dirs;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_directory() && e.path().filename().string()[0] != '.') class_dirs.push_back(e.path());
  if (class_dirs.empty())
    throw Error(path + ": neither class sub-folders (DIR/<class>/<image>) nor idx files ({train,t10k}-images-idx3-ubyte[.gz])");
  std::sort(class_dirs.begin(), class_dirs.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  std::vector<std::string> names;
  for (const fs::path& d : class_dirs) names.push_back(d.filename().string());
  check_count(names, num_labels, path);
  const int64_t channels = image_channels(processor, model_channels, path);

  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (size_t k = 0; k < class_dirs.size(); ++k) {
    // torchvision's order: sorted os.walk (folder by folder), each folder's files sorted.
    std::vector<std::pair<std::string, std::string>> found;
    const auto opts = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
    for (const auto& e : fs::recursive_directory_iterator(class_dirs[k], opts))
      if (e.is_regular_file() && is_image_file(e.path()))
        found.emplace_back(e.path().parent_path().string(), e.path().filename().string());
    if (found.empty())
      throw Error(class_dirs[k].string() + ": class folder without image files (jpg, jpeg, jfif, png, webp, bmp, ppm, pgm, pnm)");
    std::sort(found.begin(), found.end());
    for (const auto& [dir, name] : found) {
      files.push_back((fs::path(dir) / name).string());
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  return std::make_unique<ImageFileSource>(path, std::move(files), std::move(labels), std::move(names), processor, channels);
}

// One CSV line split into fields: RFC 4180 quoting ("a,b" and "" for a quote), unquoted fields
// trimmed. False for an unterminated quote.
bool split_csv_row(const std::string& line, std::vector<std::string>& fields) {
  fields.clear();
  std::string field;
  bool in_quotes = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        in_quotes = false;
      }
    } else if (c == ',') {
      fields.push_back(was_quoted ? field : trim(field));
      field.clear();
      was_quoted = false;
    } else if (c == '"' && !was_quoted && trim(field).empty()) {
      in_quotes = was_quoted = true;
      field.clear();
    } else if (!(was_quoted && std::isspace(static_cast<unsigned char>(c)))) {
      field += c;
    }
  }
  fields.push_back(was_quoted ? field : trim(field));
  return !in_quotes;
}

std::unique_ptr<DataSource> open_csv(const std::string& path, const ConvNextImageProcessor& processor,
                                     int64_t model_channels, int64_t num_labels) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  const int64_t channels = image_channels(processor, model_channels, path);
  const fs::path base = fs::path(path).parent_path();

  struct Row {
    std::string file, label;
    int64_t line;
  };
  std::vector<Row> rows;
  std::string line;
  std::vector<std::string> fields;
  bool all_int = true;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(no);
    if (!split_csv_row(line, fields)) throw Error(where + ": unterminated quote");
    if (fields.size() != 2)
      throw Error(where + ": expected 2 fields 'path,label', got " + std::to_string(fields.size()));
    int64_t id;
    const bool is_int = parse_int(fields[1], id);
    if (rows.empty() && !is_int && fields[1] == "label") continue;  // the header
    if (fields[0].empty()) throw Error(where + ": empty path");
    if (fields[1].empty()) throw Error(where + ": empty label");
    all_int = all_int && is_int;
    const fs::path p(fields[0]);
    rows.push_back({(p.is_relative() ? base / p : p).string(), fields[1], no});
  }
  if (in.bad()) throw Error(path + ": read error");
  if (rows.empty()) throw Error(path + ": no rows");

  // Integer labels are class ids; otherwise every label is a class name (classes = sorted names).
  std::vector<std::string> names;
  if (!all_int) {
    std::set<std::string> s;
    for (const Row& r : rows) s.insert(r.label);
    names.assign(s.begin(), s.end());
    check_count(names, num_labels, path);
  }
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (const Row& r : rows) {
    int64_t id = 0;
    if (all_int) {
      parse_int(r.label, id);
      check_label(id, num_labels, path + ":" + std::to_string(r.line));
    } else {
      id = std::lower_bound(names.begin(), names.end(), r.label) - names.begin();
    }
    files.push_back(r.file);
    labels.push_back(id);
  }
  return std::make_unique<ImageFileSource>(path, std::move(files), std::move(labels), std::move(names), processor, channels);
}

// ---- idx (MNIST / Fashion-MNIST) --------------------------------------------

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

// An idx file of unsigned bytes (the only element type MNIST uses): dimensions and data.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an idx file, gzip-compressed or not (zlib's gz* functions read both).
IdxArray read_idx(const std::string& path, uint32_t magic, size_t ndim) {
  errno = 0;
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open: " + (errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(f.get(), 1 << 17);
  auto read = [&](uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      const int r = gzread(f.get(), dst + got, static_cast<unsigned>(std::min<size_t>(n - got, 1 << 20)));
      if (r < 0) {
        int err = 0;
        throw Error(path + ": " + gzerror(f.get(), &err));
      }
      if (r == 0) break;  // end of file (or of a truncated gzip stream)
      got += static_cast<size_t>(r);
    }
    return got;
  };
  auto be32 = [&](const char* what) {
    uint8_t b[4];
    if (read(b, 4) != 4) throw Error(path + ": truncated idx header (" + what + ")");
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  };
  const uint32_t m = be32("magic number");
  if (m != magic) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "not an idx %s file (magic number 0x%08x, expected 0x%08x)",
                  ndim == 3 ? "images" : "labels", m, magic);
    throw Error(path + ": " + buf);
  }
  IdxArray a;
  uint64_t total = 1;
  for (size_t d = 0; d < ndim; ++d) {
    const uint32_t n = be32("dimensions");
    // Bounded so that the product cannot overflow; idx images are small.
    if (d > 0 && (n < 1 || n > 65535))
      throw Error(path + ": image dimension " + std::to_string(n) + " out of range 1..65535");
    a.dims.push_back(n);
    total *= n;
  }
  // Grown as bytes arrive, so that a forged header cannot make us allocate what the file lacks.
  size_t have = 0;
  while (have < total) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(total - have, uint64_t{1} << 24));
    a.data.resize(have + want);
    const size_t got = read(a.data.data() + have, want);
    have += got;
    if (got < want) break;
  }
  if (have < total)
    throw Error(path + ": truncated: " + std::to_string(have) + " of " + std::to_string(total) + " data bytes");
  a.data.resize(have);
  return a;
}

class IdxSource final : public DataSource {
 public:
  IdxSource(std::string origin, std::string images_path, IdxArray images, std::vector<int64_t> labels,
            std::vector<std::string> names, const ConvNextImageProcessor& processor, int64_t channels)
      : origin_(std::move(origin)), images_path_(std::move(images_path)), images_(std::move(images)),
        labels_(std::move(labels)), names_(std::move(names)), processor_(processor), channels_(channels) {}

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  std::vector<std::string> class_names() const override { return names_; }
  std::string origin() const override { return origin_; }

  Example get(int64_t i, const Augment& augment, std::mt19937_64& rng) const override {
    if (i < 0 || i >= size()) throw Error(origin_ + ": example " + std::to_string(i) + " out of range");
    const int64_t rows = images_.dims[1], cols = images_.dims[2], hw = rows * cols;
    const uint8_t* src = images_.data.data() + i * hw;
    // A PIL "L" image; convert("RGB") repeats the grey value, as here for an RGB model.
    ImageU8 img;
    img.width = cols;
    img.height = rows;
    img.channels = channels_;
    img.pixels.resize(static_cast<size_t>(hw * channels_));
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t c = 0; c < channels_; ++c) img.pixels[static_cast<size_t>(p * channels_ + c)] = src[p];
    Example ex;
    try {
      ex.pixels = preprocess_example(std::move(img), processor_, augment, rng);
    } catch (const Error& e) {
      throw Error(images_path_ + ": image " + std::to_string(i) + ": " + e.what());
    }
    ex.label = labels_[static_cast<size_t>(i)];
    return ex;
  }

 private:
  std::string origin_, images_path_;
  IdxArray images_;
  std::vector<int64_t> labels_;
  std::vector<std::string> names_;
  ConvNextImageProcessor processor_;
  int64_t channels_;
};

const char* const kFashionNames[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// DIR/stem, or DIR/stem.gz.
std::string idx_file(const fs::path& dir, const std::string& stem) {
  std::error_code ec;
  for (const char* ext : {"", ".gz"}) {
    const fs::path p = dir / (stem + ext);
    if (fs::exists(p, ec)) return p.string();
  }
  throw Error(dir.string() + ": no " + stem + "[.gz]");
}

bool has_idx_files(const fs::path& dir) {
  std::error_code ec;
  for (const char* stem : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"})
    for (const char* ext : {"", ".gz"})
      if (fs::exists(dir / (std::string(stem) + ext), ec)) return true;
  return false;
}

// `base` is a directory (split "train" or "test") or an images file.
std::unique_ptr<DataSource> open_idx(const std::string& spec, const fs::path& base, const std::string& split,
                                     const ConvNextImageProcessor& processor, int64_t model_channels, int64_t num_labels) {
  std::string images_path, labels_path;
  std::error_code ec;
  if (fs::is_directory(base, ec)) {
    const std::string prefix = split == "test" ? "t10k" : "train";
    images_path = idx_file(base, prefix + "-images-idx3-ubyte");
    labels_path = idx_file(base, prefix + "-labels-idx1-ubyte");
  } else {
    images_path = base.string();
    std::string name = base.filename().string();
    const size_t pos = name.find("images-idx3");
    if (pos == std::string::npos) throw Error(images_path + ": an idx images file's name must contain 'images-idx3'");
    name.replace(pos, 11, "labels-idx1");
    fs::path lp = base.parent_path() / name;
    if (!fs::exists(lp, ec)) {  // the other compression
      const fs::path alt = name.ends_with(".gz") ? base.parent_path() / name.substr(0, name.size() - 3)
                                                 : base.parent_path() / (name + ".gz");
      if (fs::exists(alt, ec)) lp = alt;
    }
    if (!fs::exists(lp, ec)) throw Error(images_path + ": no labels file " + lp.string() + " beside it");
    labels_path = lp.string();
  }
  const int64_t channels = image_channels(processor, model_channels, spec);
  IdxArray images = read_idx(images_path, 0x00000803, 3);
  const IdxArray labels = read_idx(labels_path, 0x00000801, 1);
  if (images.dims[0] != labels.dims[0])
    throw Error(images_path + ": " + std::to_string(images.dims[0]) + " images but " + labels_path + " has " +
                std::to_string(labels.dims[0]) + " labels");
  if (images.dims[0] == 0) throw Error(images_path + ": no images");
  std::vector<int64_t> ids(labels.data.begin(), labels.data.end());
  int64_t max_label = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    check_label(ids[i], num_labels, labels_path + ": example " + std::to_string(i));
    max_label = std::max(max_label, ids[i]);
  }
  std::vector<std::string> names;
  if (lower(spec).find("fashion") != std::string::npos && max_label < 10) {
    names.assign(std::begin(kFashionNames), std::end(kFashionNames));
  } else {
    for (int64_t k = 0; k <= std::max<int64_t>(9, max_label); ++k) names.push_back(std::to_string(k));
  }
  return std::make_unique<IdxSource>(spec, images_path, std::move(images), std::move(ids), std::move(names), processor,
                                     channels);
}

// ---- safetensors: tensors used as they are ----------------------------------

class TensorSource final : public DataSource {
 public:
  TensorSource(std::string origin, Tensor pixels, std::vector<int64_t> ids, Tensor targets)
      : origin_(std::move(origin)), pixels_(std::move(pixels)), ids_(std::move(ids)), targets_(std::move(targets)) {}

  int64_t size() const override { return pixels_.dim(0); }
  std::vector<std::string> class_names() const override { return {}; }
  bool float_labels() const override { return !targets_.empty(); }
  bool float_labels_2d() const override { return float_labels() && targets_.ndim() == 2; }
  std::string origin() const override { return origin_; }

  Example get(int64_t i, const Augment&, std::mt19937_64&) const override {
    if (i < 0 || i >= size()) throw Error(origin_ + ": example " + std::to_string(i) + " out of range");
    Example ex;
    ex.pixels = Tensor({pixels_.dim(1), pixels_.dim(2), pixels_.dim(3)});
    const int64_t n = ex.pixels.numel();
    std::copy(pixels_.data() + i * n, pixels_.data() + (i + 1) * n, ex.pixels.data());
    if (float_labels()) {
      const int64_t l = targets_.numel() / size();
      ex.target.assign(targets_.data() + i * l, targets_.data() + (i + 1) * l);
    } else {
      ex.label = ids_[static_cast<size_t>(i)];
    }
    return ex;
  }

 private:
  std::string origin_;
  Tensor pixels_;
  std::vector<int64_t> ids_;
  Tensor targets_;
};

std::unique_ptr<DataSource> open_safetensors(const std::string& path, int64_t model_channels, int64_t num_labels) {
  const auto f = io::SafetensorsFile::open(path);
  const io::TensorInfo* pv = f->find("pixel_values");
  if (!pv) throw Error(path + ": no tensor 'pixel_values'");
  if (pv->shape.size() != 4 || pv->shape[0] < 1)
    throw Error(path + ": pixel_values has shape " + shape_str(pv->shape) + ", expected [N,C,H,W] with N >= 1");
  const int64_t n = pv->shape[0];
  if (pv->shape[1] != model_channels)
    throw Error(path + ": pixel_values has " + std::to_string(pv->shape[1]) + " channels but the model takes " +
                std::to_string(model_channels));
  Tensor pixels = f->get_f32("pixel_values");  // borrowed from the mapping, which it keeps alive

  const io::TensorInfo* li = f->find("labels");
  if (!li) throw Error(path + ": no tensor 'labels'");
  const bool is_float = li->dtype == "F32" || li->dtype == "F16" || li->dtype == "BF16" || li->dtype == "F64";
  if (li->shape.empty() || li->shape[0] != n || li->shape.size() > (is_float ? 2u : 1u))
    throw Error(path + ": labels has shape " + shape_str(li->shape) + ", expected [" + std::to_string(n) + "]" +
                (is_float ? " or [" + std::to_string(n) + ",num_labels]" : ""));
  if (is_float) {
    if (li->shape.size() == 2 && num_labels > 0 && li->shape[1] != num_labels)
      throw Error(path + ": labels has " + std::to_string(li->shape[1]) + " columns but the model has " +
                  std::to_string(num_labels) + " labels");
    return std::make_unique<TensorSource>(path, std::move(pixels), std::vector<int64_t>{}, f->get_f32("labels"));
  }
  std::vector<int64_t> ids = f->get_i64("labels");  // Error naming the file for a non-integer dtype
  for (size_t i = 0; i < ids.size(); ++i) check_label(ids[i], num_labels, path + ": labels[" + std::to_string(i) + "]");
  return std::make_unique<TensorSource>(path, std::move(pixels), std::move(ids), Tensor());
}

}  // namespace

std::unique_ptr<DataSource> DataSource::open(const std::string& path, const ConvNextImageProcessor& processor,
                                             int64_t model_channels, int64_t num_labels) {
  try {
    std::error_code ec;
    for (const std::string split : {"train", "test"})
      if (path.ends_with(":" + split) && !fs::exists(path, ec))
        return open_idx(path, path.substr(0, path.size() - split.size() - 1), split, processor, model_channels, num_labels);
    if (fs::is_directory(path, ec))
      return has_idx_files(path) ? open_idx(path, path, "train", processor, model_channels, num_labels)
                                 : open_image_folder(path, processor, model_channels, num_labels);
    if (!fs::exists(path, ec)) throw Error(path + ": no such file or directory");
    const std::string name = lower(fs::path(path).filename().string());
    if (name.ends_with(".csv")) return open_csv(path, processor, model_channels, num_labels);
    if (name.ends_with(".safetensors")) return open_safetensors(path, model_channels, num_labels);
    if (name.find("images-idx3") != std::string::npos)
      return open_idx(path, path, "", processor, model_channels, num_labels);
    throw Error(path + ": not a data source (expected a directory of class folders, a .csv file, idx files or a "
                       ".safetensors file)");
  } catch (const fs::filesystem_error& e) {
    throw Error(e.what());
  }
}

}  // namespace convnext::train
