// Training and evaluation data: where examples come from, how they become pixel_values, and
// the loader that prepares batches on worker threads ahead of the training step.
//
// Sources (DataSource::open picks by what the path is):
//   directory of class sub-folders  ImageFolder layout: classes = sorted sub-folder names
//   *.csv                           "path,label" rows (header optional; paths relative to the CSV;
//                                   label = class name or integer id)
//   idx files                       Fashion-MNIST / MNIST: a directory holding
//                                   {train,t10k}-images-idx3-ubyte[.gz] + labels, or one images file
//                                   (its labels file found beside it); "PATH:train" / "PATH:test"
//                                   select the split of a directory
//   *.safetensors                   `pixel_values` [N,C,H,W] F32 and `labels` (I64 [N] or F32 [N] /
//                                   [N,L]), used as they are (no preprocessing, no augmentation)
// Images are decoded as transformers' load_image does and go through the model's
// ConvNextImageProcessor; with augmentation, first the transform of transformers'
// image-classification example: RandomResizedCrop to the processor's output size (torchvision's
// scale (0.08, 1), ratio (3/4, 4/3), bilinear) and RandomHorizontalFlip, seeded.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "convnext/error.h"
#include "convnext/image_processor.h"
#include "convnext/model.h"
#include "convnext/tensor.h"

namespace convnext::train {

struct Augment {
  bool enabled = true;
  double scale_min = 0.08, scale_max = 1.0;  // RandomResizedCrop area fraction
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  bool hflip = true;
};

// What DataSource::get throws when an example's image cannot be read or decoded (its message
// starts with the file): the Loader skips such examples, while any other Error stops it.
class UnreadableImage : public Error {
 public:
  using Error::Error;
};

// One example ready for the model.
struct Example {
  Tensor pixels;             // [C, H, W]
  int64_t label = -100;      // class id (single-label sources)
  std::vector<float> target; // float labels (safetensors F32 labels), else empty
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Opens `path` (see above). Errors (missing path, empty class folder, bad CSV row, labels out of
  // range for `num_labels` when > 0, a channel count the model cannot take) throw convnext::Error
  // with one line naming the file.
  static std::unique_ptr<DataSource> open(const std::string& path, const ConvNextImageProcessor& processor,
                                          int64_t model_channels, int64_t num_labels = 0);

  virtual int64_t size() const = 0;
  // Class names when the source has them (ImageFolder folders, CSV names, Fashion-MNIST's ten), else empty.
  virtual std::vector<std::string> class_names() const = 0;
  // True for float labels (multi-label / regression from safetensors).
  virtual bool float_labels() const { return false; }
  // For float labels: true when stored as [N, L] (a batch then gets [B, L]), false for [N] ([B]).
  virtual bool float_labels_2d() const { return false; }
  // Example i, augmented with `rng` when `augment.enabled` (sources that hold tensors ignore it).
  // Throws UnreadableImage (a convnext::Error) naming the file when an image cannot be read.
  virtual Example get(int64_t i, const Augment& augment, std::mt19937_64& rng) const = 0;
  // The path this source was opened from.
  virtual std::string origin() const = 0;
};

struct Batch {
  Tensor pixel_values;  // [B, C, H, W]
  Labels labels;
  std::vector<int64_t> indices;  // example indices in the source
  int64_t skipped = 0;           // unreadable examples left out of this batch (warned once each)
};

struct LoaderOptions {
  int64_t batch_size = 8;
  bool shuffle = true;
  bool drop_last = false;
  Augment augment;
  uint64_t seed = 0;
  int workers = 2;     // threads preparing batches ahead of the step, 0..1024 (0: next() prepares each)
  int prefetch = 2;    // batches prepared ahead
  // Data parallelism: this process is rank `rank` of `world`, and reads its strided share of the
  // epoch's order, as PyTorch's DistributedSampler: order[rank], order[rank + world], ... With
  // pad_shards (training) the order is first padded with its own start to a multiple of world, so
  // every rank has as many batches; without (evaluation) each example is read exactly once.
  int rank = 0, world = 1;
  bool pad_shards = true;
};

// Iterates one epoch of a source: order from (seed, epoch) (a permutation when shuffle), every
// example's augmentation seeded by (seed, epoch, index), so a run is reproducible whatever the
// number of workers. Unreadable images are skipped with one warning line on stderr each and
// counted (Batch::skipped, skipped_total()); a batch left with no example is not delivered (its
// count is in skipped_total() only). Any other exception from the source propagates from next().
class Loader {
 public:
  Loader(const DataSource& source, LoaderOptions options, int64_t epoch, int64_t start_batch = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  int64_t batches() const;       // in this epoch, counting those start_batch skips
  bool next(Batch& out);         // false at the end of the epoch
  int64_t skipped_total() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The pieces the sources and the loader share, exposed for the tests.
// Rank `rank`'s strided share of `order` among `world` ranks (DistributedSampler), padded first
// with the order's own start to a multiple of world when `pad`.
std::vector<int64_t> shard(const std::vector<int64_t>& order, int rank, int world, bool pad);

// torchvision's RandomResizedCrop.get_params for a width × height image: up to 10 draws of an
// area fraction in [scale_min, scale_max] and a log-uniform aspect ratio, the first box that
// fits wins (top-left drawn uniformly); otherwise a center crop clamped to the ratio range.
// Throws Error for a negative or inverted scale range, a ratio <= 0 or an inverted ratio range.
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
CropBox random_resized_crop_box(int64_t width, int64_t height, const Augment& augment, std::mt19937_64& rng);

// `image` → [C, H, W] pixel_values: exactly processor.preprocess(image) when !augment.enabled;
// otherwise RandomResizedCrop (Pillow BILINEAR) to the size the processor would produce for this
// image, a horizontal flip with p = 0.5 (when augment.hflip), then the processor's own rescale
// and normalisation.
Tensor preprocess_example(ImageU8 image, const ConvNextImageProcessor& processor, const Augment& augment,
                          std::mt19937_64& rng);

namespace sampling {
// Random numbers defined here rather than by <random>'s distributions, whose outputs differ
// between standard libraries: the same seed gives the same run everywhere.
double uniform01(std::mt19937_64& rng);                // [0, 1), 53 bits
int64_t uniform_index(std::mt19937_64& rng, int64_t n);  // [0, n), unbiased; n >= 1
// The seed of example `index`'s augmentation in `epoch` (splitmix64 mixing).
uint64_t example_seed(uint64_t seed, int64_t epoch, int64_t index);
}  // namespace sampling

}  // namespace convnext::train
