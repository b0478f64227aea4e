// preprocessor_config.json <-> ImageProcessorConfig, including the legacy ConvNextFeatureExtractor
// layout of the facebook/convnext-*-224 repositories ("size": 224, no rescale keys).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "io/json_file.h"

namespace convnext {

using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& key, const std::string& expected, const json& v) {
  throw Error(origin + ": '" + key + "' must be " + expected + ", got " + v.dump());
}

std::vector<double> number_list(const json& v, const std::string& origin, const char* key, bool& scalar) {
  std::vector<double> out;
  scalar = v.is_number();
  if (scalar) return {v.get<double>()};
  if (!v.is_array() || v.empty()) bad(origin, key, "a number or a non-empty list of numbers", v);
  for (const json& e : v) {
    if (!e.is_number()) bad(origin, key, "a list of numbers", v);
    out.push_back(e.get<double>());
  }
  return out;
}

}  // namespace

ImageProcessorConfig ImageProcessorConfig::from_json_string(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(origin + ": expected a JSON object");
  ImageProcessorConfig c;
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto boolean = [&](const char* k, bool& dst) {
    if (!has(k)) return;
    if (!j[k].is_boolean()) bad(origin, k, "true or false", j[k]);
    dst = j[k].get<bool>();
  };
  boolean("do_resize", c.do_resize);
  boolean("do_rescale", c.do_rescale);
  boolean("do_normalize", c.do_normalize);
  if (has("size")) {
    const json& s = j["size"];
    if (s.is_number_integer()) {
      c.shortest_edge = s.get<int64_t>();  // legacy: get_size_dict(224, default_to_square=False)
    } else if (s.is_object() && s.contains("shortest_edge") && s["shortest_edge"].is_number_integer()) {
      c.shortest_edge = s["shortest_edge"].get<int64_t>();
    } else if (s.is_object()) {
      throw Error(origin + ": Size dictionary must contain 'shortest_edge' key. Got " + s.dump());
    } else {
      bad(origin, "size", "an integer or {\"shortest_edge\": N}", s);
    }
    if (c.shortest_edge < 1 || c.shortest_edge > 16384)
      throw Error(origin + ": size shortest_edge " + std::to_string(c.shortest_edge) + " is out of range 1..16384");
  }
  if (has("crop_pct")) {
    if (!j["crop_pct"].is_number()) bad(origin, "crop_pct", "a number", j["crop_pct"]);
    c.crop_pct = j["crop_pct"].get<double>();
    if (!(c.crop_pct > 0)) throw Error(origin + ": crop_pct must be > 0, got " + j["crop_pct"].dump());
  }
  if (has("resample")) {
    if (!j["resample"].is_number_integer()) bad(origin, "resample", "an integer (PIL.Image.Resampling)", j["resample"]);
    c.resample = j["resample"].get<int>();
    if (c.resample < 0 || c.resample > 5)
      throw Error(origin + ": resample " + std::to_string(c.resample) +
                  " is not a PIL filter (0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)");
  }
  if (has("rescale_factor")) {
    if (!j["rescale_factor"].is_number()) bad(origin, "rescale_factor", "a number", j["rescale_factor"]);
    c.rescale_factor = j["rescale_factor"].get<double>();
  }
  // A single number broadcasts over the channels (numpy semantics in transformers' normalize).
  bool mean_scalar = false, std_scalar = false;
  if (has("image_mean")) c.image_mean = number_list(j["image_mean"], origin, "image_mean", mean_scalar);
  if (has("image_std")) c.image_std = number_list(j["image_std"], origin, "image_std", std_scalar);
  if (mean_scalar && c.image_std.size() == 3) c.image_mean.assign(3, c.image_mean[0]);
  if (std_scalar && c.image_mean.size() == 3) c.image_std.assign(3, c.image_std[0]);
  if (mean_scalar && std_scalar) {
    c.image_mean.assign(3, c.image_mean[0]);
    c.image_std.assign(3, c.image_std[0]);
    c.broadcast_mean_std = true;
  }
  if (c.image_mean.size() != c.image_std.size())
    throw Error(origin + ": image_mean has " + std::to_string(c.image_mean.size()) + " entries and image_std " +
                std::to_string(c.image_std.size()));
  if (c.image_mean.size() != 1 && c.image_mean.size() != 3)
    throw Error(origin + ": image_mean/image_std need 1 (grey) or 3 (RGB) entries, got " + std::to_string(c.image_mean.size()));
  return c;
}

ImageProcessorConfig ImageProcessorConfig::from_file(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) p /= "preprocessor_config.json";
  return from_json_string(io::read_text_file(p.string()), p.string());
}

std::string ImageProcessorConfig::to_json_string() const {
  json j;
  j["crop_pct"] = crop_pct;
  j["do_normalize"] = do_normalize;
  j["do_rescale"] = do_rescale;
  j["do_resize"] = do_resize;
  j["image_mean"] = image_mean;
  j["image_processor_type"] = "ConvNextImageProcessor";
  j["image_std"] = image_std;
  j["resample"] = resample;
  j["rescale_factor"] = rescale_factor;
  j["size"] = {{"shortest_edge", shortest_edge}};
  return j.dump(2) + "\n";
}

ImageProcessorConfig ImageProcessorConfig::for_model(int64_t image_size, int64_t num_channels) {
  ImageProcessorConfig c;
  c.shortest_edge = image_size;
  c.crop_pct = 0.875;  // 224 / 256
  c.resample = 3;      // BICUBIC
  c.rescale_factor = 1.0 / 255.0;
  if (num_channels == 1) {
    // 0.299 R + 0.587 G + 0.114 B of IMAGENET_DEFAULT_MEAN / STD: 0.459 and 0.226.
    c.image_mean = {0.459};
    c.image_std = {0.226};
  } else {
    // Other channel counts than 1 and 3 cannot come from image files; their data is pixel_values.
    c.image_mean = {0.485, 0.456, 0.406};  // IMAGENET_DEFAULT_MEAN
    c.image_std = {0.229, 0.224, 0.225};   // IMAGENET_DEFAULT_STD
  }
  return c;
}

}  // namespace convnext
