#!/usr/bin/env python3
"""Independent twin of transformers 5's ConvNextImageProcessorPil, in Pillow + numpy only.

This is a test-time tool, never a runtime dependency of the engine, and it never calls the
engine. It re-implements, step by step, what transformers 5.x runs for

    ConvNextImageProcessorPil(**preprocessor_config)(images, return_tensors="pt")

(models/convnext/image_processing_pil_convnext.py on top of image_processing_backends.PilBackend
and image_transforms.py): resize (shortest edge to int(shortest_edge / crop_pct), Pillow resample
with reducing_gap=None, numpy center crop with zero padding) or the >= 384 warp, then rescale
(float64 multiply, cast to float32), then normalize ((x - mean) / std in float32). The functions
below carry the names of the transformers functions they mirror.

  --check-shared DIR   validates the twin against the real transformers outputs in DIR
                       (../shared/fixtures/hf): every slow/<setting>/<image> case of
                       preprocess/meta.json, slow/batch/s224_bicubic and legacy/slow/chelsea
                       (the latter from legacy_config/preprocessor_config.json, "size": 224).
                       It requires max|twin - ref| <= 1e-6 and, beyond that, bit-identical
                       float32 (a 1-ulp slip would pass 1e-6 but is a different pipeline).
                       Exit 1 on a mismatch, 77 (ctest: skipped) when DIR or Pillow/numpy
                       are missing.
  --sweep OUTDIR       writes a sweep the shared fixtures do not cover, with this twin as ground
                       truth: OUTDIR/cases.json (a list of {name, processor_config, image, ...}),
                       the input images as PNG files and OUTDIR/expected.safetensors (one F32
                       [1, 3, H, W] tensor per case name). Inputs are decoded the way
                       transformers' load_image does: ImageOps.exif_transpose(Image.open(p))
                       .convert("RGB").

Run it with Debian's interpreter (/usr/bin/python3, python3-pil + python3-numpy); Pillow 9.4
resamples exactly as the Pillow 12.3 the shared fixtures were made with (--check-shared shows it).
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time
from collections.abc import Collection

try:
    import numpy as np
    import PIL
    from PIL import Image, ImageOps
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from safetensors_np import read_safetensors, write_safetensors
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"pil_processor_twin: Pillow/numpy not importable for {sys.executable} ({exc}); nothing done. "
          "Install python3-pil python3-numpy and run with /usr/bin/python3.")
    sys.exit(77)  # ctest: SKIP_RETURN_CODE

SKIP = 77
TOL = 1e-6  # the project's tolerance for PIL-backend preprocessing (the same float32 numbers)

# PIL.Image.Resampling values, as transformers' PILImageResampling uses them.
FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

# --------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data
# --------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------
# image_utils: channel-format inference and size helpers
# --------------------------------------------------------------------------------------------

FIRST, LAST = "channels_first", "channels_last"


def infer_channel_dimension_format(image, num_channels=(1, 3)):
    """image_utils.infer_channel_dimension_format: FIRST wins when both ends could be channels."""
    if image.ndim == 3:
        first_dim, last_dim = 0, 2
    elif image.ndim == 4:
        first_dim, last_dim = 1, 3
    elif image.ndim == 5:
        first_dim, last_dim = 2, 4
    else:
        raise ValueError(f"Unsupported number of image dimensions: {image.ndim}")
    if image.shape[first_dim] in num_channels:
        return FIRST
    if image.shape[last_dim] in num_channels:
        return LAST
    raise ValueError("Unable to infer channel dimension format")


def get_image_size(image, channel_dim):
    """image_utils.get_image_size: (height, width)."""
    if channel_dim == FIRST:
        return image.shape[-2], image.shape[-1]
    return image.shape[-3], image.shape[-2]


def to_channel_dimension_format(image, channel_dim, input_channel_dim=None):
    """image_transforms.to_channel_dimension_format (last three dims only)."""
    if input_channel_dim is None:
        input_channel_dim = infer_channel_dimension_format(image)
    if input_channel_dim == channel_dim:
        return image
    if channel_dim == FIRST:
        axes = list(range(image.ndim - 3)) + [image.ndim - 1, image.ndim - 3, image.ndim - 2]
    else:
        axes = list(range(image.ndim - 3)) + [image.ndim - 2, image.ndim - 1, image.ndim - 3]
    return image.transpose(axes)


def get_size_dict(size, default_to_square):
    """image_processing_utils.get_size_dict (convert_to_size_dict) for the forms ConvNeXT files use:
    an int is the legacy ConvNextFeatureExtractor layout -> {"shortest_edge": int} when
    default_to_square is False (ConvNextImageProcessorPil.default_to_square)."""
    if isinstance(size, dict):
        return dict(size)
    if isinstance(size, int):
        return {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return {"height": size[0], "width": size[1]}
    raise ValueError(f"Could not convert size input to size dict: {size}")


# --------------------------------------------------------------------------------------------
# image_transforms: the numpy/PIL operations PilBackend calls
# --------------------------------------------------------------------------------------------


def rescale(image, scale, dtype=np.float32):
    """image_transforms.rescale: upcast to float64, multiply, downcast to float32 at the end."""
    rescaled = image.astype(np.float64) * scale
    return rescaled.astype(dtype)


def _rescale_for_pil_conversion(image):
    """image_transforms._rescale_for_pil_conversion: uint8 -> no rescale."""
    if image.dtype == np.uint8:
        return False
    if np.allclose(image, image.astype(int)):
        if np.all(image >= 0) and np.all(image <= 255):
            return False
        raise ValueError("values outside [0, 255] cannot be converted to uint8")
    if np.all(image >= 0) and np.all(image <= 1):
        return True
    raise ValueError("values outside [0, 1] cannot be converted to uint8")


def to_pil_image(image, do_rescale=None, input_data_format=None):
    """image_transforms.to_pil_image: channels last, a single channel squeezed, optional x255,
    .astype(np.uint8) (truncation), PIL.Image.fromarray."""
    image = to_channel_dimension_format(image, LAST, input_data_format)
    image = np.squeeze(image, axis=-1) if image.shape[-1] == 1 else image
    do_rescale = _rescale_for_pil_conversion(image) if do_rescale is None else do_rescale
    if do_rescale:
        image = rescale(image, 255)
    image = image.astype(np.uint8)
    return Image.fromarray(image)


def get_resize_output_image_size(input_image, size, default_to_square=True, max_size=None,
                                 input_data_format=None):
    """image_transforms.get_resize_output_image_size: (height, width); the long side is
    int(size * long / short), a Python true division then truncation."""
    if isinstance(size, (tuple, list)):
        if len(size) == 2:
            return tuple(size)
        size = size[0]
    if default_to_square:
        return (size, size)
    height, width = get_image_size(input_image, input_data_format)
    short, long = (width, height) if width <= height else (height, width)
    requested_new_short = size
    new_short, new_long = requested_new_short, int(requested_new_short * long / short)
    if max_size is not None:
        if max_size <= requested_new_short:
            raise ValueError("max_size must be strictly greater than the requested size")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if width <= height else (new_short, new_long)


def np_resize(image, size, resample=None, reducing_gap=None, data_format=None, input_data_format=None):
    """image_transforms.resize: the numpy array goes through PIL (to_pil_image), is resized with
    PIL.Image.resize((width, height), resample, reducing_gap) and comes back as numpy."""
    resample = resample if resample is not None else Image.Resampling.BILINEAR
    if len(size) != 2:
        raise ValueError("size must have 2 elements")
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(image)
    data_format = input_data_format if data_format is None else data_format
    do_rescale = _rescale_for_pil_conversion(image)
    pil = to_pil_image(image, do_rescale=do_rescale, input_data_format=input_data_format)
    height, width = size
    resized = pil.resize((width, height), resample=resample, reducing_gap=reducing_gap)
    resized = np.array(resized)
    resized = np.expand_dims(resized, axis=-1) if resized.ndim == 2 else resized
    resized = to_channel_dimension_format(resized, data_format, input_channel_dim=LAST)
    return rescale(resized, 1 / 255) if do_rescale else resized


def np_center_crop(image, size, data_format=None, input_data_format=None):
    """image_transforms.center_crop: floor offsets; when the crop is larger than the image, zero
    padding into a max-size canvas at ceil((new - old) / 2) (the odd pixel goes top/left)."""
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(image)
    output_data_format = data_format if data_format is not None else input_data_format
    image = to_channel_dimension_format(image, FIRST, input_data_format)
    orig_height, orig_width = get_image_size(image, FIRST)
    crop_height, crop_width = int(size[0]), int(size[1])
    top = (orig_height - crop_height) // 2
    bottom = top + crop_height
    left = (orig_width - crop_width) // 2
    right = left + crop_width
    if top >= 0 and bottom <= orig_height and left >= 0 and right <= orig_width:
        image = image[..., top:bottom, left:right]
        return to_channel_dimension_format(image, output_data_format, FIRST)
    new_height = max(crop_height, orig_height)
    new_width = max(crop_width, orig_width)
    new_image = np.zeros_like(image, shape=image.shape[:-2] + (new_height, new_width))
    top_pad = math.ceil((new_height - orig_height) / 2)
    left_pad = math.ceil((new_width - orig_width) / 2)
    new_image[..., top_pad:top_pad + orig_height, left_pad:left_pad + orig_width] = image
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    new_image = new_image[..., max(0, top):min(new_height, bottom), max(0, left):min(new_width, right)]
    return to_channel_dimension_format(new_image, output_data_format, FIRST)


def np_normalize(image, mean, std, data_format=None, input_data_format=None):
    """image_transforms.normalize: non-float input cast to float32; mean/std as arrays of the
    image's dtype; FIRST layout computes ((image.T - mean) / std).T elementwise."""
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(image)
    channel_axis = 0 if input_data_format == FIRST else image.ndim - 1
    num_channels = image.shape[channel_axis]
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    if isinstance(mean, Collection):
        if len(mean) != num_channels:
            raise ValueError(f"mean must have {num_channels} elements if it is an iterable, got {len(mean)}")
    else:
        mean = [mean] * num_channels
    mean = np.array(mean, dtype=image.dtype)
    if isinstance(std, Collection):
        if len(std) != num_channels:
            raise ValueError(f"std must have {num_channels} elements if it is an iterable, got {len(std)}")
    else:
        std = [std] * num_channels
    std = np.array(std, dtype=image.dtype)
    if input_data_format == LAST:
        image = (image - mean) / std
    else:
        image = ((image.T - mean) / std).T
    return to_channel_dimension_format(image, data_format, input_data_format) if data_format is not None else image


# --------------------------------------------------------------------------------------------
# ConvNextImageProcessorPil (image_processing_pil_convnext.py) on PilBackend
# (image_processing_backends.py)
# --------------------------------------------------------------------------------------------


class ConvNextImageProcessorPilTwin:
    # Class attributes of ConvNextImageProcessorPil; rescale_factor from the base processor.
    resample = 3  # PILImageResampling.BICUBIC (transformers 5, PR #42934)
    image_mean = [0.5, 0.5, 0.5]  # IMAGENET_STANDARD_MEAN
    image_std = [0.5, 0.5, 0.5]  # IMAGENET_STANDARD_STD
    size = {"shortest_edge": 384}
    default_to_square = False
    do_resize = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    crop_pct = 224 / 256

    _KEYS = ("resample", "image_mean", "image_std", "size", "do_resize", "do_rescale", "rescale_factor",
             "do_normalize", "crop_pct")

    def __init__(self, **kwargs):
        # ImageProcessingMixin.from_dict / BaseImageProcessor._set_attributes: known keys override
        # the class defaults; feature_extractor_type, image_processor_type, ... are not settings.
        for k in self._KEYS:
            if k in kwargs and kwargs[k] is not None:
                setattr(self, k, kwargs[k])
        # _standardize_kwargs: size -> SizeDict via get_size_dict(size, default_to_square=False)
        self.size = get_size_dict(self.size, default_to_square=self.default_to_square)

    @classmethod
    def from_dict(cls, config):
        return cls(**config)

    # PilBackend.process_image: PIL -> np.array (channels last), 2-D -> expand_dims(axis=0),
    # LAST -> transpose(2, 0, 1). numpy input has its layout inferred.
    @staticmethod
    def process_image(image):
        input_data_format = None
        if isinstance(image, Image.Image):
            image = np.array(image)
            input_data_format = LAST
        if image.ndim == 2:
            image = np.expand_dims(image, axis=0)
        if input_data_format is None:
            input_data_format = infer_channel_dimension_format(image)
        if input_data_format == LAST:
            image = np.transpose(image, (2, 0, 1))
        return image

    # PilBackend.resize with a SizeDict(height, width): np_resize with reducing_gap=None.
    @staticmethod
    def _backend_resize(image, height, width, resample):
        resample = resample if resample is not None else Image.Resampling.BILINEAR
        return np_resize(image, size=(height, width), resample=resample, reducing_gap=None,
                         data_format=FIRST, input_data_format=FIRST)

    # ConvNextImageProcessorPil.resize
    def resize(self, image, size, resample, crop_pct):
        shortest_edge = size.get("shortest_edge")
        if not shortest_edge:
            raise ValueError(f"Size dictionary must contain 'shortest_edge' key. Got {size.keys()}")
        if shortest_edge < 384:
            # maintain same ratio, resizing shortest edge to shortest_edge/crop_pct
            resize_shortest_edge = int(shortest_edge / crop_pct)
            resize_size = get_resize_output_image_size(image, size=resize_shortest_edge, default_to_square=False,
                                                       input_data_format=FIRST)
            image = self._backend_resize(image, resize_size[0], resize_size[1], resample)
            # then crop to (shortest_edge, shortest_edge): PilBackend.center_crop -> np_center_crop
            return np_center_crop(image, size=(shortest_edge, shortest_edge), data_format=FIRST,
                                  input_data_format=FIRST)
        # warping (no cropping) when evaluated at 384 or larger
        return self._backend_resize(image, shortest_edge, shortest_edge, resample)

    # ConvNextImageProcessorPil._preprocess, then BatchFeature(return_tensors="pt") stacking.
    # Its do_center_crop step is off: ConvNeXT sets no crop_size (the crop is inside resize).
    def __call__(self, images):
        if not isinstance(images, (list, tuple)):
            images = [images]
        processed = []
        for image in images:
            image = self.process_image(image)
            if self.do_resize:
                image = self.resize(image, self.size, self.resample, self.crop_pct)
            if self.do_rescale:
                image = rescale(image, self.rescale_factor)  # PilBackend.rescale
            if self.do_normalize:
                image = np_normalize(image, self.image_mean, self.image_std, data_format=FIRST,
                                     input_data_format=FIRST)  # PilBackend.normalize
            processed.append(image)
        # With do_rescale and do_normalize both off transformers returns the uint8 values
        # (a uint8 tensor); the tests compare values, so they are stored as float32.
        return np.stack(processed).astype(np.float32, copy=False)


def load_image(path):
    """transformers.image_utils.load_image on a path: exif_transpose, then convert("RGB")."""
    image = Image.open(path)
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")


# --------------------------------------------------------------------------------------------
# --check-shared
# --------------------------------------------------------------------------------------------


def check_shared(root):
    pre = os.path.join(root, "preprocess")
    if not os.path.isdir(root) or not os.path.isfile(os.path.join(pre, "meta.json")):
        print(f"pil_processor_twin: shared fixtures not found at {root}; skipping")
        return SKIP
    with open(os.path.join(pre, "meta.json")) as f:
        meta = json.load(f)
    exp = read_safetensors(os.path.join(pre, "expected.safetensors"))
    checks = []  # (key, processor, images)
    configs_by_setting = {}
    for case in meta["cases"]:
        key = case["key"]
        if key.startswith("slow/"):
            cfg = case["processor_config"]
            configs_by_setting[case["setting"]] = cfg
            checks.append((key, ConvNextImageProcessorPilTwin.from_dict(cfg), [exp["rgb/" + case["image"]]]))
    # slow/batch/s224_bicubic: the batch images in one call with the s224_bicubic setting
    batch_cfg = configs_by_setting["s224_bicubic"]
    checks.append(("slow/batch/s224_bicubic", ConvNextImageProcessorPilTwin.from_dict(batch_cfg),
                   [exp["rgb/" + n] for n in meta["batch_images"]]))
    # legacy/slow/chelsea: loaded from the legacy file ("size": 224, feature_extractor_type)
    with open(os.path.join(pre, "legacy_config", "preprocessor_config.json")) as f:
        legacy_cfg = json.load(f)
    legacy = ConvNextImageProcessorPilTwin.from_dict(legacy_cfg)
    legacy_meta = next(c for c in meta["cases"] if c["key"] == "legacy/slow/chelsea")
    want = ConvNextImageProcessorPilTwin.from_dict(legacy_meta["processor_config"])
    for k in ConvNextImageProcessorPilTwin._KEYS:  # the legacy file resolves to what transformers saved
        mine, theirs = getattr(legacy, k), getattr(want, k)
        if isinstance(mine, tuple):
            mine = list(mine)
        if mine != theirs:
            print(f"FAIL legacy config: {k} = {mine!r}, transformers saved {theirs!r}")
            return 1
    checks.append(("legacy/slow/chelsea", legacy, [exp["rgb/" + legacy_meta["image"]]]))

    failures = 0
    for key, proc, images in checks:
        ref = exp[key]
        ours = proc(images)
        if ours.shape != ref.shape:
            print(f"FAIL {key}: shape {list(ours.shape)} vs transformers {list(ref.shape)}")
            failures += 1
            continue
        err = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
        exact = int(np.count_nonzero(ours != ref))
        # The tolerance is 1e-6, but the twin is ground truth for the sweep, so it must be
        # bit-exact: a 1-ulp slip (a float32 rescale, a multiply by 1/std) fails too.
        status = "ok  " if err <= TOL and exact == 0 else "FAIL"
        print(f"{status} {key:40s} {str(list(ref.shape)):18s} max|twin-ref| {err:.3g} ({exact} elements differ)")
        failures += status == "FAIL"
    print(f"pil_processor_twin --check-shared: {len(checks) - failures}/{len(checks)} cases match "
          f"transformers (Pillow {PIL.__version__}, numpy {np.__version__})")
    return 1 if failures else 0


# --------------------------------------------------------------------------------------------
# --sweep: inputs
# --------------------------------------------------------------------------------------------


def _smooth(rng, w, h, cells_x, cells_y, channels=3, noise=0.0):
    """A smooth random field (bilinear interpolation of a coarse grid) plus optional noise, uint8."""
    grid = rng.uniform(0, 255, size=(cells_y + 1, cells_x + 1, channels))
    ys = np.linspace(0, cells_y, h)
    xs = np.linspace(0, cells_x, w)
    y0 = np.minimum(np.floor(ys).astype(int), cells_y - 1)
    x0 = np.minimum(np.floor(xs).astype(int), cells_x - 1)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    img = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    if noise:
        img = img + rng.normal(0, noise, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _exif_orientation_bytes(orientation):
    """A minimal little-endian TIFF/EXIF block holding only tag 0x0112 (Orientation)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def make_images(outdir):
    """Writes the sweep's input PNGs; returns {name: file name}."""
    rng = np.random.RandomState(20240611)
    files = {}

    def save(name, arr_or_img, mode=None, **kw):
        img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img, mode=mode)
        fn = name + ".png"
        img.save(os.path.join(outdir, fn), **kw)
        files[name] = fn

    # W x H in every name
    save("noise_97x61", rng.randint(0, 256, size=(61, 97, 3), dtype=np.uint8))
    g = np.zeros((203, 61, 3))
    g[..., 0] = np.linspace(0, 255, 203)[:, None]
    g[..., 1] = np.linspace(255, 0, 61)[None, :]
    g[..., 2] = (np.arange(203)[:, None] * 7 + np.arange(61)[None, :] * 13) % 256
    save("grad_61x203", np.clip(np.rint(g + rng.normal(0, 12, size=g.shape)), 0, 255).astype(np.uint8))
    save("photo_640x427", _smooth(rng, 640, 427, 9, 6, noise=2.0), compress_level=9)
    save("tiny_5x3", rng.randint(0, 256, size=(3, 5, 3), dtype=np.uint8))
    save("square_256x256", _smooth(rng, 256, 256, 5, 5, noise=20.0))
    # width 384: the >= 384 warp leaves that axis at its size (Pillow skips the pass)
    save("wide_384x50", _smooth(rng, 384, 50, 12, 2, noise=10.0))
    # grey, RGBA (alpha dropped by convert("RGB"), not composited), palette with transparency,
    # grey + alpha, and an RGB PNG whose eXIf chunk says orientation 6 (rotate 270)
    save("grey_45x70", _smooth(rng, 45, 70, 4, 6, channels=1, noise=25.0)[..., 0], mode="L")
    rgba = np.concatenate([rng.randint(0, 256, size=(45, 70, 3), dtype=np.uint8),
                           rng.choice(np.array([0, 1, 128, 255], dtype=np.uint8), size=(45, 70, 1))], axis=2)
    save("rgba_70x45", rgba, mode="RGBA")
    pal = Image.fromarray(rng.randint(0, 16, size=(40, 50), dtype=np.uint8), mode="P")
    pal.putpalette(list(rng.randint(0, 256, size=16 * 3, dtype=np.uint8).tolist()))
    save("palette_50x40", pal, transparency=3)
    la = np.stack([_smooth(rng, 33, 47, 3, 4, channels=1, noise=30.0)[..., 0],
                   rng.randint(0, 256, size=(47, 33), dtype=np.uint8)], axis=2)
    save("la_33x47", la, mode="LA")
    save("exif6_40x64", _smooth(rng, 40, 64, 3, 5, noise=15.0), exif=_exif_orientation_bytes(6))
    return files


# --------------------------------------------------------------------------------------------
# --sweep: cases
# --------------------------------------------------------------------------------------------

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def pcfg(shortest_edge, crop_pct=0.875, resample=3, **over):
    """A processor_config as ConvNextImageProcessor(Pil).to_dict() writes it (a valid
    preprocessor_config.json)."""
    cfg = {
        "crop_pct": crop_pct,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ConvNextImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": resample,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": shortest_edge},
    }
    cfg.update(over)
    return cfg


def build_cases():
    """[(name, processor_config, image name)]: a covering subset of filters x sizes x crop_pct x
    images (every filter meets every size class and the zero-padding crop), plus the options."""
    cases = []

    def add(name, cfg, image):
        cases.append((name, cfg, image))

    main_imgs = ["noise_97x61", "grad_61x203", "photo_640x427"]
    crops = [0.875, 1.0, 0.95]
    # < 384, crop_pct <= 1: every (size, crop_pct) pair twice over the 6 filters, images rotating
    small_pairs = [(s, c) for s in (224, 160, 32) for c in crops]
    small_sizes_left = {224: 2}  # keeps the output small: S=224 only twice, the rest 160 / 32
    k = 0
    for f in range(6):
        for j in range(2):
            s, c = small_pairs[k % 9]
            if s == 224:
                if small_sizes_left[224] == 0:
                    s = 160
                else:
                    small_sizes_left[224] -= 1
            img = main_imgs[(f + j) % 3]
            add(f"{FILTERS[f]}/s{s}_c{c}/{img}", pcfg(s, c, f), img)
            k += 1
    # < 384, crop_pct 1.15: the resized short side int(S / 1.15) < S, so the crop pads with zeros
    pad_specs = [(32, "tiny_5x3"), (160, "grad_61x203"), (32, "noise_97x61"),
                 (160, "photo_640x427"), (32, "grad_61x203"), (160, "noise_97x61")]
    for f in range(6):
        s, img = pad_specs[f]
        add(f"{FILTERS[f]}/s{s}_c1.15_pad/{img}", pcfg(s, 1.15, f), img)
    # == 383, the largest size of the resize-then-crop branch (383 / 1.15 pads too)
    c383 = [0.875, 1.0, 0.95, 1.15, 0.875, 1.16]  # 383 - int(383 / 1.16) = 53: odd padding
    i383 = ["photo_640x427", "noise_97x61", "grad_61x203", "photo_640x427", "tiny_5x3", "noise_97x61"]
    for f in range(6):
        add(f"{FILTERS[f]}/s383_c{c383[f]}/{i383[f]}", pcfg(383, c383[f], f), i383[f])
    # >= 384: the warp to a square, no crop (crop_pct has no effect)
    s384 = [384, 384, 384, 448, 384, 384]
    i384 = ["grad_61x203", "photo_640x427", "wide_384x50", "noise_97x61", "tiny_5x3", "photo_640x427"]
    for f in range(6):
        add(f"{FILTERS[f]}/s{s384[f]}_warp/{i384[f]}", pcfg(s384[f], crops[f % 3], f), i384[f])

    # exact-size resizes: 112 / 0.4375 = 256 on a 256x256 image (Pillow returns a copy)
    add("identity/s112_c0.4375_bicubic/square_256x256", pcfg(112, 0.4375, 3), "square_256x256")
    add("identity/s112_c0.4375_lanczos/square_256x256", pcfg(112, 0.4375, 1), "square_256x256")
    # int(99 / 0.55) = int(179.99999999999997) = 179, not 180
    add("trunc/s99_c0.55_bicubic/grad_61x203", pcfg(99, 0.55, 3), "grad_61x203")
    add("trunc/s99_c0.55_box/photo_640x427", pcfg(99, 0.55, 4), "photo_640x427")

    # normalisation and rescaling options
    add("norm/imagenet_s96/photo_640x427", pcfg(96, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD), "photo_640x427")
    add("norm/odd_s64_bilinear/grad_61x203",
        pcfg(64, 0.95, 2, image_mean=[0.1234567, 0.9, -0.25], image_std=[0.0123, 3.7, 1 / 3]), "grad_61x203")
    add("norm/odd_s48_nearest/noise_97x61",
        pcfg(48, 1.0, 0, image_mean=[1e-3, 0.5000001, 0.7071067811865476], image_std=[0.299, 0.587, 0.114]),
        "noise_97x61")
    add("rescale/1_127.5_s64/photo_640x427",
        pcfg(64, rescale_factor=1 / 127.5, image_mean=[1.0, 1.0, 1.0], image_std=[1.0, 1.0, 1.0]), "photo_640x427")
    add("rescale/0.01_imagenet_s64_lanczos/noise_97x61",
        pcfg(64, 0.95, 1, rescale_factor=0.01, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD), "noise_97x61")
    add("rescale/1_255_decimal_s64/grad_61x203", pcfg(64, rescale_factor=0.00392156862745098), "grad_61x203")
    add("rescale/off_normalize_s64/noise_97x61", pcfg(64, do_rescale=False), "noise_97x61")
    add("rescale/off_normalize_mmcv_s64_hamming/photo_640x427",
        pcfg(64, 1.0, 5, do_rescale=False, image_mean=[123.675, 116.28, 103.53], image_std=[58.395, 57.12, 57.375]),
        "photo_640x427")
    add("nonormalize/s64/grad_61x203", pcfg(64, do_normalize=False), "grad_61x203")
    add("nonormalize/0.01_s64_box/photo_640x427", pcfg(64, 1.0, 4, do_normalize=False, rescale_factor=0.01),
        "photo_640x427")
    add("nonormalize/off_rescale_s64/noise_97x61", pcfg(64, do_normalize=False, do_rescale=False), "noise_97x61")
    add("noresize/noise_97x61", pcfg(224, do_resize=False), "noise_97x61")
    add("noresize/tiny_5x3_imagenet", pcfg(384, do_resize=False, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
        "tiny_5x3")
    add("noresize/grad_61x203_rescale0.01", pcfg(32, do_resize=False, rescale_factor=0.01), "grad_61x203")

    # the legacy ConvNextFeatureExtractor file of facebook/convnext-*-224 ("size": 224, no rescale
    # keys), and a file with only "size" (every other key from the class defaults)
    legacy = {"crop_pct": 0.875, "do_normalize": True, "do_resize": True,
              "feature_extractor_type": "ConvNextFeatureExtractor", "image_mean": IMAGENET_MEAN,
              "image_std": IMAGENET_STD, "resample": 3, "size": 224}
    add("legacy/int_size_224/photo_640x427", legacy, "photo_640x427")
    add("legacy/int_size_96_bilinear/grad_61x203", dict(legacy, size=96, resample=2), "grad_61x203")
    add("defaults/only_size_64/photo_640x427", {"size": {"shortest_edge": 64}}, "photo_640x427")

    # other PNG modes, converted to RGB by load_image
    add("mode_L/s64_bicubic/grey_45x70", pcfg(64, 0.875, 3), "grey_45x70")
    add("mode_L/s32_c1.15_nearest/grey_45x70", pcfg(32, 1.15, 0), "grey_45x70")
    add("mode_L/s96_lanczos/grey_45x70", pcfg(96, 0.875, 1), "grey_45x70")
    add("mode_RGBA/s96_c0.95_bilinear/rgba_70x45", pcfg(96, 0.95, 2), "rgba_70x45")
    add("mode_RGBA/s32_c1.0_box/rgba_70x45", pcfg(32, 1.0, 4), "rgba_70x45")
    add("mode_RGBA/noresize/rgba_70x45", pcfg(224, do_resize=False), "rgba_70x45")
    add("mode_P/s64_hamming/palette_50x40", pcfg(64, 0.875, 5), "palette_50x40")
    add("mode_LA/s48_c1.0_bicubic/la_33x47", pcfg(48, 1.0, 3), "la_33x47")
    add("exif6/s64_bicubic/exif6_40x64", pcfg(64, 0.875, 3), "exif6_40x64")
    add("exif6/noresize/exif6_40x64", pcfg(64, do_resize=False), "exif6_40x64")
    return cases


def size_class(cfg):
    """The branch of ConvNextImageProcessorPil.resize a config takes, and whether its crop pads."""
    size = get_size_dict(cfg.get("size", {"shortest_edge": 384}), default_to_square=False)["shortest_edge"]
    if not cfg.get("do_resize", True):
        return "noresize", False
    if size >= 384:
        return ">=384", False
    pads = int(size / cfg.get("crop_pct", 224 / 256)) < size
    return ("==383" if size == 383 else "<384"), pads


def sweep(outdir):
    t0 = time.time()
    tmp = outdir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    files = make_images(tmp)
    cases = build_cases()
    names = [c[0] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    expected, listing, decoded = {}, [], {}
    for name, cfg, img in cases:
        if img not in decoded:
            decoded[img] = load_image(os.path.join(tmp, files[img]))
        out = ConvNextImageProcessorPilTwin.from_dict(cfg)(decoded[img])
        expected[name] = out
        listing.append({"name": name, "processor_config": cfg, "image": files[img], "shape": list(out.shape),
                        "size_class": size_class(cfg)[0], "crop_pads": size_class(cfg)[1],
                        "resample": cfg.get("resample", 3)})
    # coverage: every filter meets every size class and the zero-padding crop
    for f in FILTERS:
        mine = [c for c in listing if c["resample"] == f]
        for cls in ("<384", "==383", ">=384"):
            assert any(c["size_class"] == cls for c in mine), (FILTERS[f], cls)
        assert any(c["crop_pads"] for c in mine), (FILTERS[f], "padding")
    with open(os.path.join(tmp, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
    write_safetensors(os.path.join(tmp, "expected.safetensors"),
                      {k: np.asarray(v, dtype=np.float32) for k, v in expected.items()})
    shutil.rmtree(outdir, ignore_errors=True)
    os.replace(tmp, outdir)
    total = sum(os.path.getsize(os.path.join(outdir, n)) for n in os.listdir(outdir))
    print(f"pil_processor_twin --sweep: {len(cases)} cases, {len(files)} images, {total / 1e6:.1f} MB in {outdir} "
          f"({time.time() - t0:.1f} s, Pillow {PIL.__version__}, numpy {np.__version__})")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-shared", metavar="DIR", help="validate the twin against ../shared/fixtures/hf")
    ap.add_argument("--sweep", metavar="OUTDIR", help="write the sweep (cases.json, PNGs, expected.safetensors)")
    args = ap.parse_args()
    if not args.check_shared and not args.sweep:
        ap.error("give --check-shared DIR and/or --sweep OUTDIR")
    rc = 0
    if args.check_shared:
        rc = check_shared(args.check_shared)
        if rc == 1:
            return rc  # a twin that disagrees with transformers writes no ground truth
    if args.sweep:
        return sweep(args.sweep)
    return rc


if __name__ == "__main__":
    sys.exit(main())
