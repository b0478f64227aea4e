// ConvNextImageProcessor: images in, pixel_values out, with transformers' exact pipeline.
//
//   auto proc = convnext::ConvNextImageProcessor::from_pretrained("path/to/checkpoint");
//   convnext::Tensor pixel_values = proc.preprocess_files({"cat.jpg", "dog.png"});   // [2, 3, S, S]
//
// Two backends reproduce the two transformers 5 classes:
//   ImageBackend::Pil          ConvNextImageProcessorPil (what the ConvNeXT docs describe):
//                              Pillow's resampling, bit-exact float32 output
//   ImageBackend::Torchvision  ConvNextImageProcessor, transformers 5's default (torchvision's
//                              int16 antialiased resize, fused rescale+normalise): within one
//                              uint8 step of transformers
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convnext/config.h"
#include "convnext/export.h"
#include "convnext/tensor.h"

namespace convnext {

struct CONVNEXT_API ImageProcessorConfig {
  bool do_resize = true;
  int64_t shortest_edge = 384;  // size: {"shortest_edge": N}, or the legacy int of ConvNextFeatureExtractor
  double crop_pct = 224.0 / 256.0;
  // PIL.Image.Resampling: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
  // transformers 5 defaults to BICUBIC (PR #42934; BILINEAR before it).
  int resample = 3;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::vector<double> image_mean = {0.5, 0.5, 0.5};  // IMAGENET_STANDARD_MEAN
  std::vector<double> image_std = {0.5, 0.5, 0.5};   // IMAGENET_STANDARD_STD
  // image_mean and image_std were single numbers: they apply to any channel count (a grey
  // model then gets "L" images, see channels_for).
  bool broadcast_mean_std = false;

  // preprocessor_config.json: every ConvNextImageProcessor key; unknown keys are ignored; a key
  // of the wrong type is an Error naming it.
  static ImageProcessorConfig from_json_string(const std::string& text, const std::string& origin = "preprocessor_config.json");
  // A preprocessor_config.json, or a directory holding one.
  static ImageProcessorConfig from_file(const std::string& path);
  std::string to_json_string() const;

  // The preprocessing a model made by this library ships with (init, convert of a checkpoint
  // without one, train): what the published facebook/convnext-*-224 checkpoints ship — resize
  // the shortest edge to image_size / crop_pct, centre crop image_size (crop_pct 0.875), bicubic,
  // rescale 1/255, ImageNet mean/std. A grey model (num_channels 1) gets one mean/std value: the
  // ImageNet values through the luma weights of Pillow's convert("L").
  static ImageProcessorConfig for_model(int64_t image_size, int64_t num_channels);
};

enum class ImageBackend { Pil, Torchvision };

// An 8-bit image, rows of interleaved channels (HWC): 3 channels (RGB) or 1 (L).
struct ImageU8 {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;
};

// One file's result from preprocess_each: its pixel_values [C, S, S], or the one-line error
// that names the file.
struct PreprocessedFile {
  Tensor pixel_values;
  std::string error;
  bool ok() const { return error.empty(); }
};

struct DecodeSettings {
  bool exif_transpose = true;        // as transformers' load_image (ImageOps.exif_transpose)
  int64_t max_pixels = 89478485;     // Pillow's decompression-bomb limit; 0 = none
};

class CONVNEXT_API ConvNextImageProcessor {
 public:
  explicit ConvNextImageProcessor(ImageProcessorConfig config = {}, ImageBackend backend = ImageBackend::Pil);
  // `path`: a preprocessor_config.json or a directory; a directory without one gives the
  // class defaults (as AutoImageProcessor would fail; we prefer a working default).
  static ConvNextImageProcessor from_pretrained(const std::string& path, ImageBackend backend = ImageBackend::Pil);
  // The processor a model made by this library ships with (`init`, `convert` of a checkpoint
  // without one, `train` of a fresh model): the preprocessor_config.json beside `config_path`
  // when there is one (a recipe's own), else ImageProcessorConfig::for_model(config).
  static ConvNextImageProcessor for_new_model(const ConvNextConfig& config, const std::string& config_path = "");
  // Writes dir/preprocessor_config.json (the directory must exist), as transformers' save_pretrained.
  void save_pretrained(const std::string& dir) const;

  const ImageProcessorConfig& config() const { return config_; }
  ImageBackend backend() const { return backend_; }
  // Channels of pixel_values: 1 when image_mean/image_std have one entry (grey models), else 3.
  int64_t channels() const;
  // The channels to decode images to for a model with `model_channels` input channels: the
  // processor's, unless its mean/std broadcast, in which case the model's.
  int64_t channels_for(int64_t model_channels) const;

  // One image (RGB, or L for a grey processor) → [C, H, W] float32. The rvalue overload
  // works in the image's own buffer instead of copying it.
  Tensor preprocess(const ImageU8& image) const;
  Tensor preprocess(ImageU8&& image) const;
  // Several images → [N, C, S, S], processed in parallel; all must come out the same size.
  Tensor preprocess(const std::vector<ImageU8>& images) const;
  // Decodes the files as transformers' load_image does (EXIF orientation, then RGB; L for
  // grey processors) and preprocesses them. Errors name the file.
  // `channels` 0 means channels().
  Tensor preprocess_files(const std::vector<std::string>& paths, const DecodeSettings& settings = {},
                          int64_t channels = 0) const;
  // The same, one result per file, in order: a file that cannot be read or decoded gets its
  // error and the others go on (what `convnext classify` does with a directory of images).
  std::vector<PreprocessedFile> preprocess_each(const std::vector<std::string>& paths, const DecodeSettings& settings = {},
                                                int64_t channels = 0) const;

  // The files decoded as load_image does: exif_transpose, then convert("RGB") (or "L").
  static ImageU8 load_image(const std::string& path, int64_t channels = 3, const DecodeSettings& settings = {});
  // The same for an encoded image in memory (JPEG, PNG, WebP, BMP, PNM: detected from the bytes);
  // `name` starts every error message. The pixel limit is checked before anything is decoded.
  static ImageU8 decode_image(const void* data, size_t size, const std::string& name = "image", int64_t channels = 3,
                              const DecodeSettings& settings = {});

 private:
  ImageProcessorConfig config_;
  ImageBackend backend_;
};

}  // namespace convnext
