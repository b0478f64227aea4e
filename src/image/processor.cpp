// ConvNextImageProcessor's pipeline, step for step as transformers 5 runs it:
//
//   PIL backend (ConvNextImageProcessorPil), on uint8 CHW numpy arrays:
//     resize   shortest_edge < 384: short side to int(shortest_edge / crop_pct), long side
//              int(size · long / short) (truncation), Pillow resample, then center_crop to
//              shortest_edge² (floor offsets; zero padding with the extra pixel top/left when
//              the crop is larger). shortest_edge ≥ 384: Pillow resample straight to a square.
//     rescale  float64(x) · rescale_factor, cast to float32
//     normalize  (x − float32(mean)) / float32(std) in float32
//   torchvision backend (ConvNextImageProcessor): the same sizes; torchvision's int16 resize;
//     crop padding puts the extra pixel bottom/right; rescale and normalise fused as
//     (x − mean/rescale_factor) / (std/rescale_factor) in float32.

#include <cmath>
#include <filesystem>
#include <fstream>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "core/parallel.h"
#include "image/decode.h"
#include "io/hub_cache.h"
#include "image/resample.h"
#include "image/resize_torchvision.h"

namespace convnext {

namespace {

using image::Image;

struct Size {
  int64_t h, w;
};

// get_resize_output_image_size(image, size, default_to_square=False): (height, width).
Size resize_output_size(int64_t H, int64_t W, int64_t size) {
  const bool w_short = W <= H;
  const int64_t s = w_short ? W : H, l = w_short ? H : W;
  // int(size * long / short): an exact integer product, a correctly rounded true division, truncation.
  const int64_t new_long = static_cast<int64_t>(static_cast<double>(size * l) / static_cast<double>(s));
  return w_short ? Size{new_long, size} : Size{size, new_long};
}

// center_crop to (ch, cw) on an 8-bit image. `pad_top_left`: numpy version (transformers'
// image_transforms.center_crop, extra pixel of odd padding at the top/left); otherwise the
// torchvision version (extra pixel bottom/right).
Image center_crop(const Image& in, int64_t ch, int64_t cw, bool pad_top_left) {
  const int64_t H = in.height, W = in.width, C = in.channels;
  int64_t top, left;
  Image canvas;
  const Image* src = &in;
  if (ch <= H && cw <= W) {
    top = (H - ch) / 2;
    left = (W - cw) / 2;
  } else {
    const int64_t nh = std::max(ch, H), nw = std::max(cw, W);
    int64_t pt, pl;
    if (pad_top_left) {
      pt = (nh - H + 1) / 2;  // ceil((nh − H) / 2)
      pl = (nw - W + 1) / 2;
    } else {
      pt = (nh - H) / 2;  // floor: the extra pixel goes to the bottom / right
      pl = (nw - W) / 2;
    }
    canvas = Image(nw, nh, C);
    for (int64_t y = 0; y < H; ++y) std::copy(in.row(y), in.row(y) + W * C, canvas.row(y + pt) + pl * C);
    src = &canvas;
    top = (nh - ch) / 2;
    left = (nw - cw) / 2;
  }
  Image out(cw, ch, C);
  for (int64_t y = 0; y < ch; ++y) std::copy(src->row(top + y) + left * C, src->row(top + y) + (left + cw) * C, out.row(y));
  return out;
}

}  // namespace

ConvNextImageProcessor::ConvNextImageProcessor(ImageProcessorConfig config, ImageBackend backend)
    : config_(std::move(config)), backend_(backend) {}

ConvNextImageProcessor ConvNextImageProcessor::from_pretrained(const std::string& model, ImageBackend backend) {
  const std::string path = io::resolve_model_path(model);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec) && !std::filesystem::exists(std::filesystem::path(path) / "preprocessor_config.json", ec))
    return ConvNextImageProcessor(ImageProcessorConfig{}, backend);
  if (!std::filesystem::is_directory(path, ec) && !path.ends_with(".json")) {
    // A bare weights file (timm, facebookresearch, torchvision): those models were trained on
    // ImageNet with mean/std IMAGENET_DEFAULT, bicubic, crop_pct 0.875 at 224 (timm's default_cfg).
    return ConvNextImageProcessor(ImageProcessorConfig::for_model(224, 3), backend);
  }
  return ConvNextImageProcessor(ImageProcessorConfig::from_file(path), backend);
}

void ConvNextImageProcessor::save_pretrained(const std::string& dir) const {
  const std::string path = (std::filesystem::path(dir) / "preprocessor_config.json").string();
  std::ofstream f(path, std::ios::binary);
  f << config_.to_json_string();
  f.close();
  if (!f) throw Error(path + ": write failed");
}

int64_t ConvNextImageProcessor::channels() const { return config_.image_mean.size() == 1 ? 1 : 3; }

int64_t ConvNextImageProcessor::channels_for(int64_t model_channels) const {
  return config_.broadcast_mean_std && model_channels == 1 ? 1 : channels();
}

Tensor ConvNextImageProcessor::preprocess(const ImageU8& u8) const { return preprocess(ImageU8(u8)); }

Tensor ConvNextImageProcessor::preprocess(ImageU8&& u8) const {
  if (u8.width < 1 || u8.height < 1) throw Error("empty image");
  if (static_cast<int64_t>(u8.pixels.size()) != u8.width * u8.height * u8.channels)
    throw Error("image buffer has " + std::to_string(u8.pixels.size()) + " bytes for " + std::to_string(u8.width) + "x" +
                std::to_string(u8.height) + "x" + std::to_string(u8.channels));
  const ImageProcessorConfig& c = config_;
  if (c.do_normalize && !c.broadcast_mean_std && static_cast<int64_t>(c.image_mean.size()) != u8.channels)
    throw Error("image has " + std::to_string(u8.channels) + " channels but image_mean/image_std have " +
                std::to_string(c.image_mean.size()) + " entries");
  const bool pil = backend_ == ImageBackend::Pil;
  Image img;
  img.width = u8.width;
  img.height = u8.height;
  img.channels = u8.channels;
  img.pixels = std::move(u8.pixels);

  if (c.do_resize) {
    const auto filter = static_cast<image::Filter>(c.resample);
    auto resize = [&](const Image& in, int64_t w, int64_t h) {
      return pil ? image::resize_pil(in, w, h, filter) : image::resize_torchvision(in, w, h, filter);
    };
    const int64_t S = c.shortest_edge;
    if (S < 384) {
      const int64_t short_target = static_cast<int64_t>(static_cast<double>(S) / c.crop_pct);
      if (short_target < 1) throw Error("shortest_edge / crop_pct gives an empty image");
      const Size sz = resize_output_size(img.height, img.width, short_target);
      img = resize(img, sz.w, sz.h);
      img = center_crop(img, S, S, /*pad_top_left=*/pil);
    } else {
      img = resize(img, S, S);  // a warp to a square, no crop
    }
  }

  const int64_t C = img.channels, HW = img.width * img.height;
  Tensor out({C, img.height, img.width});
  for (int64_t ch = 0; ch < C; ++ch) {
    const size_t mi = static_cast<size_t>(ch) % c.image_mean.size();
    const float mean = c.do_normalize ? static_cast<float>(c.image_mean[mi]) : 0.0f;
    const float stdv = c.do_normalize ? static_cast<float>(c.image_std[mi]) : 1.0f;
    float* dst = out.data() + ch * HW;
    const uint8_t* src = img.pixels.data() + ch;
    if (pil || !(c.do_rescale && c.do_normalize)) {
      const float scale_f = static_cast<float>(c.rescale_factor);
      for (int64_t i = 0; i < HW; ++i) {
        float v = static_cast<float>(src[i * C]);
        if (c.do_rescale)
          v = pil ? static_cast<float>(static_cast<double>(src[i * C]) * c.rescale_factor) : v * scale_f;
        if (c.do_normalize) v = (v - mean) / stdv;
        dst[i] = v;
      }
    } else {
      // torchvision: mean and std divided by rescale_factor in float32, one subtract and divide.
      const float inv = static_cast<float>(1.0 / c.rescale_factor);
      const float m = mean * inv, s = stdv * inv;
      for (int64_t i = 0; i < HW; ++i) dst[i] = (static_cast<float>(src[i * C]) - m) / s;
    }
  }
  return out;
}

Tensor ConvNextImageProcessor::preprocess(const std::vector<ImageU8>& images) const {
  if (images.empty()) throw Error("no images to preprocess");
  std::vector<Tensor> outs(images.size());
  std::vector<std::string> errors(images.size());
  parallel::for_each(static_cast<int64_t>(images.size()), images.size() > 1, [&](int64_t i_) {
    const size_t i = static_cast<size_t>(i_);
    try {
      outs[i] = preprocess(images[i]);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });
  for (const std::string& e : errors)
    if (!e.empty()) throw Error(e);
  const Shape s = outs[0].shape();
  for (size_t i = 1; i < outs.size(); ++i)
    if (outs[i].shape() != s)
      throw Error("images come out of the processor with different sizes (" + shape_str(s) + " and " +
                  shape_str(outs[i].shape()) + "); enable do_resize to batch them");
  return stack(outs);
}

namespace {
image::DecodeOptions decode_options(const DecodeSettings& settings) {
  image::DecodeOptions o;
  o.exif_transpose = settings.exif_transpose;
  o.max_pixels = settings.max_pixels;
  return o;
}
ImageU8 as_u8(Image&& img) {
  ImageU8 u;
  u.width = img.width;
  u.height = img.height;
  u.channels = img.channels;
  u.pixels = std::move(img.pixels);
  return u;
}
}  // namespace

ImageU8 ConvNextImageProcessor::load_image(const std::string& path, int64_t channels, const DecodeSettings& settings) {
  return as_u8(image::load_image(path, channels == 1 ? image::ColorMode::L : image::ColorMode::RGB, decode_options(settings)));
}

ImageU8 ConvNextImageProcessor::decode_image(const void* data, size_t size, const std::string& name, int64_t channels,
                                             const DecodeSettings& settings) {
  return as_u8(image::decode_image(static_cast<const uint8_t*>(data), size, name,
                                   channels == 1 ? image::ColorMode::L : image::ColorMode::RGB, decode_options(settings)));
}

std::vector<PreprocessedFile> ConvNextImageProcessor::preprocess_each(const std::vector<std::string>& paths,
                                                                      const DecodeSettings& settings,
                                                                      int64_t channels_wanted) const {
  std::vector<PreprocessedFile> outs(paths.size());
  const int64_t ch = channels_wanted > 0 ? channels_wanted : channels();
  parallel::for_each(static_cast<int64_t>(paths.size()), paths.size() > 1, [&](int64_t i_) {
    const size_t i = static_cast<size_t>(i_);
    try {
      outs[i].pixel_values = preprocess(load_image(paths[i], ch, settings));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      outs[i].error = what.rfind(paths[i], 0) == 0 ? what : paths[i] + ": " + what;  // name the file once
    }
  });
  return outs;
}

Tensor ConvNextImageProcessor::preprocess_files(const std::vector<std::string>& paths, const DecodeSettings& settings,
                                                int64_t channels_wanted) const {
  if (paths.empty()) throw Error("no images to preprocess");
  const std::vector<PreprocessedFile> outs = preprocess_each(paths, settings, channels_wanted);
  for (const PreprocessedFile& f : outs)
    if (!f.ok()) throw Error(f.error);
  const Shape s = outs[0].pixel_values.shape();
  std::vector<Tensor> images;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].pixel_values.shape() != s)
      throw Error(paths[i] + ": comes out as " + shape_str(outs[i].pixel_values.shape()) + ", the first image as " +
                  shape_str(s) + " (enable do_resize to batch images of different sizes)");
    images.push_back(outs[i].pixel_values);
  }
  return stack(images);
}

}  // namespace convnext
