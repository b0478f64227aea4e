"""convnext: Hugging Face transformers' ConvNeXT classes on a native C++ engine.

Change one import line of code written for transformers and get the same numbers, faster, without
PyTorch::

    from convnext import ConvNextImageProcessor, ConvNextForImageClassification

    processor = ConvNextImageProcessor.from_pretrained("models/convnext-fashion-mnist")
    model = ConvNextForImageClassification.from_pretrained("models/convnext-fashion-mnist")
    inputs = processor(image, return_tensors="np")
    logits = model(**inputs).logits
    print(model.config.id2label[int(logits.argmax(-1)[0])])

Arrays are numpy: float32 C-contiguous input is read in place, anything else (other dtypes, torch
tensors, objects with ``__array__`` or ``__dlpack__``) is converted once; outputs own their memory.
The GIL is released while the engine preprocesses and computes, so threads run in parallel.
Errors are ``FileNotFoundError``, ``ValueError`` or ``RuntimeError`` with the command-line tool's
one-line message.

ConvNeXt V2 (GRN, config ``model_type`` "convnextv2") has transformers' names too:
``ConvNextV2Config``, ``ConvNextV2Model``, ``ConvNextV2ForImageClassification`` and
``ConvNextV2Backbone``. The V2 classes take V2 checkpoints only (transformers, timm ``convnextv2_*``
or facebookresearch ConvNeXt-V2 layouts); the ConvNext classes load either kind, as the config says.
"""

import json as _json
import os as _os
from collections import OrderedDict as _OrderedDict

import numpy as _np

from . import _core

__version__ = _core.version()
__all__ = [
    "ConvNextConfig",
    "ConvNextModel",
    "ConvNextForImageClassification",
    "ConvNextBackbone",
    "ConvNextV2Config",
    "ConvNextV2Model",
    "ConvNextV2ForImageClassification",
    "ConvNextV2Backbone",
    "ConvNextImageProcessor",
    "ImageClassificationPipeline",
    "pipeline",
    "train",
    "set_num_threads",
    "num_threads",
]

set_num_threads = _core.set_num_threads
num_threads = _core.num_threads


def _path(p):
    return _os.fspath(p) if isinstance(p, _os.PathLike) else p


# ---- config -------------------------------------------------------------------------------------


class ConvNextConfig:
    """transformers' ``ConvNextConfig``: every field of config.json as an attribute.

    ``ConvNextConfig(**kwargs)`` starts from transformers' defaults; ``from_pretrained`` reads a
    checkpoint's config.json (or infers it from a timm / facebookresearch / torchvision state dict).
    """

    model_type = "convnext"

    def __new__(cls, **kwargs):
        # ConvNextConfig(model_type="convnextv2") is a ConvNextV2Config, as the JSON of one is.
        if cls is ConvNextConfig and kwargs.get("model_type") == "convnextv2":
            cls = ConvNextV2Config
        return object.__new__(cls)

    def __init__(self, **kwargs):
        d = _json.loads(_core.config_from_json(_json.dumps(kwargs)))
        object.__setattr__(self, "_d", d)

    @classmethod
    def _from_json(cls, text):
        """The config of the JSON's model type: a ConvNextV2Config for "convnextv2"."""
        d = _json.loads(text)
        if cls is ConvNextConfig and d.get("model_type") == "convnextv2":
            cls = ConvNextV2Config
        c = cls.__new__(cls)
        object.__setattr__(c, "_d", d)
        return c

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """A directory holding config.json, a hub id in the local cache, or any checkpoint layout."""
        c = cls._from_json(_core.config_of_checkpoint(_path(path)))
        found = c._d.get("model_type", "convnext")
        if cls.model_type == "convnextv2" and found != "convnextv2":
            raise ValueError(f"{_os.fspath(path)}: model_type is {found!r}, not a ConvNeXt V2 checkpoint (use ConvNextConfig)")
        for k, v in kwargs.items():
            setattr(c, k, v)
        return c

    def __getattr__(self, name):
        d = object.__getattribute__(self, "_d")
        if name == "id2label":
            return {int(k): v for k, v in d.get("id2label", {}).items()}
        if name == "label2id":
            return {v: int(k) for k, v in d.get("id2label", {}).items()}
        if name == "num_labels":
            return len(d.get("id2label", {}))
        if name in d:
            return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        d = dict(object.__getattribute__(self, "_d"))
        if name == "id2label":
            value = {str(k): v for k, v in value.items()}
        if name == "num_labels":
            name, value = "id2label", {str(i): f"LABEL_{i}" for i in range(int(value))}
        d[name] = value
        # Checked and aligned by the engine, as transformers' __init__ does.
        object.__setattr__(self, "_d", _json.loads(_core.config_from_json(_json.dumps(d))))

    def to_dict(self):
        """The config as a dict (what config.json holds)."""
        return _json.loads(_json.dumps(self._d))

    def to_json_string(self):
        return _json.dumps(self._d, indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, directory):
        _os.makedirs(directory, exist_ok=True)
        with open(_os.path.join(directory, "config.json"), "w") as f:
            f.write(self.to_json_string())

    def __repr__(self):
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other):
        return isinstance(other, ConvNextConfig) and self._d == other._d


class ConvNextV2Config(ConvNextConfig):
    """transformers' ``ConvNextV2Config``: ConvNeXt V2 (GRN after the activation, no layer scale,
    so no ``layer_scale_init_value``); the same fields otherwise, ``model_type`` "convnextv2"."""

    model_type = "convnextv2"

    def __init__(self, **kwargs):
        kwargs.pop("layer_scale_init_value", None)  # not a ConvNextV2Config argument
        super().__init__(**dict(kwargs, model_type="convnextv2"))


# ---- outputs ------------------------------------------------------------------------------------


class ModelOutput(_OrderedDict):
    """transformers' ModelOutput: fields as attributes and as keys; ``out[0]`` is the first field.
    Fields that were not computed are absent (``None`` as attributes)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            if name.startswith("_"):
                raise AttributeError(name) from None
            return None

    def __getitem__(self, k):
        if isinstance(k, (int, slice)):
            return self.to_tuple()[k]
        return super().__getitem__(k)

    def to_tuple(self):
        return tuple(self.values())


class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    pass


class ImageClassifierOutputWithNoAttention(ModelOutput):
    pass


class BackboneOutput(ModelOutput):
    pass


def _float_array(x):
    """float32 C-contiguous without a copy when it already is; anything array-like converted once."""
    if isinstance(x, _np.ndarray):
        return _np.ascontiguousarray(x, dtype=_np.float32)
    if hasattr(x, "__array__"):
        if hasattr(x, "detach"):  # a torch tensor that requires grad
            x = x.detach()
        if hasattr(x, "cpu"):
            x = x.cpu()
        return _np.ascontiguousarray(_np.asarray(x), dtype=_np.float32)
    if hasattr(x, "__dlpack__"):
        return _np.ascontiguousarray(_np.from_dlpack(x), dtype=_np.float32)
    return _np.ascontiguousarray(_np.asarray(x, dtype=_np.float32))


def _labels_array(labels):
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu()
    a = _np.asarray(labels)
    return a


# ---- models -------------------------------------------------------------------------------------


class _PreTrainedModel:
    _arch = "classifier"
    _output = ModelOutput
    _v2 = False  # the ConvNextV2 classes: V2 models only

    def __init__(self, config, seed=0, num_threads=None):
        """Freshly initialised weights for `config` (transformers' _init_weights)."""
        text = config.to_json_string()
        if self._v2:  # a V2 class builds ConvNeXt V2 from the config's fields
            d = config.to_dict()
            d.pop("layer_scale_init_value", None)
            text = _json.dumps(dict(d, model_type="convnextv2"))
        self._m = _core.Model(config_json=text, arch=self._arch, seed=seed, num_threads=num_threads)
        self._config = ConvNextConfig._from_json(self._m.config_json())

    @classmethod
    def from_pretrained(cls, path, dtype="float32", num_threads=None, torch_dtype=None, num_labels=None,
                        ignore_mismatched_sizes=False, inference_only=True, **unused):
        """A save_pretrained directory, a hub id in the local cache, or any layout the CLI reads
        (pytorch_model.bin, sharded, timm / torchvision / original state dicts, tf_model.h5).

        dtype: "float32", "bfloat16" (also torch.float32 / torch.bfloat16) or "int8" (the blocks'
        pointwise GEMMs in int8, weights per output channel, activations per row). num_threads: this
        model's threads (None: the process default). inference_only=False keeps the original weights
        (needed to save the model again)."""
        if torch_dtype is not None:
            dtype = torch_dtype
        m = cls.__new__(cls)
        if cls._v2:  # refused before any weight is read
            model_type = _json.loads(_core.config_of_checkpoint(_path(path))).get("model_type")
            if model_type != "convnextv2":
                raise ValueError(f"{_os.fspath(path)}: model_type is {model_type!r}, not a ConvNeXt V2 checkpoint "
                                 f"(use {cls.__name__.replace('V2', '')})")
        m._m = _core.Model(path=_path(path), arch=cls._arch, dtype=str(dtype), num_threads=num_threads,
                           inference_only=inference_only, num_labels=num_labels,
                           ignore_mismatched_sizes=ignore_mismatched_sizes)
        m._config = ConvNextConfig._from_json(m._m.config_json())
        return m

    @property
    def config(self):
        return self._config

    @property
    def dtype(self):
        return {"f32": "float32", "bf16": "bfloat16", "int8": "int8"}.get(self._m.precision(), self._m.precision())

    def num_parameters(self):
        return self._m.num_parameters()

    def save_pretrained(self, directory, dtype="float32"):
        """config.json + model.safetensors that transformers' from_pretrained reads."""
        self._m.save_pretrained(_os.fspath(directory), str(dtype))

    # transformers scripts call these; the engine has no training mode or devices to switch.
    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def __call__(self, pixel_values=None, labels=None, output_hidden_states=False, return_dict=True, **unused):
        return self.forward(pixel_values=pixel_values, labels=labels, output_hidden_states=output_hidden_states)

    def forward(self, pixel_values=None, labels=None, output_hidden_states=False):
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        d = self._m.forward(_float_array(pixel_values), _labels_array(labels), bool(output_hidden_states))
        return self._output(self._order(d))

    @staticmethod
    def _order(d):
        return d


class ConvNextModel(_PreTrainedModel):
    """transformers' ConvNextModel: ``last_hidden_state`` [N, C, H/32, W/32], ``pooler_output``
    [N, C] and, with output_hidden_states, ``hidden_states`` (embeddings + each stage, NCHW)."""

    _arch = "model"
    _output = BaseModelOutputWithPoolingAndNoAttention

    @staticmethod
    def _order(d):
        keys = ["last_hidden_state", "pooler_output", "hidden_states"]
        return [(k, d[k]) for k in keys if k in d]


class ConvNextForImageClassification(_PreTrainedModel):
    """transformers' ConvNextForImageClassification: ``logits`` [N, num_labels], with labels the
    ``loss`` (regression, single- or multi-label as transformers chooses), and ``hidden_states``."""

    _arch = "classifier"
    _output = ImageClassifierOutputWithNoAttention

    @staticmethod
    def _order(d):
        keys = ["loss", "logits", "hidden_states", "pooler_output", "last_hidden_state"]
        out = [(k, d[k]) for k in keys if k in d]
        if "loss" in d:
            out[0] = ("loss", _np.float32(d["loss"]))
        return out


class ConvNextBackbone(_PreTrainedModel):
    """transformers' ConvNextBackbone: ``feature_maps`` (one per out_features entry, NCHW, each
    normalised by its hidden_states_norms)."""

    _arch = "backbone"
    _output = BackboneOutput

    @staticmethod
    def _order(d):
        keys = ["feature_maps", "hidden_states"]
        return [(k, d[k]) for k in keys if k in d]


class ConvNextV2Model(ConvNextModel):
    """transformers' ConvNextV2Model (outputs as ConvNextModel's)."""

    _v2 = True


class ConvNextV2ForImageClassification(ConvNextForImageClassification):
    """transformers' ConvNextV2ForImageClassification (outputs as ConvNextForImageClassification's)."""

    _v2 = True


class ConvNextV2Backbone(ConvNextBackbone):
    """transformers' ConvNextV2Backbone (outputs as ConvNextBackbone's)."""

    _v2 = True


# ---- image processor ----------------------------------------------------------------------------

_PROCESSOR_KEYS = {"do_resize", "size", "crop_pct", "resample", "do_rescale", "rescale_factor", "do_normalize",
                   "image_mean", "image_std"}


class ConvNextImageProcessor:
    """transformers' ConvNextImageProcessor: images in, ``{"pixel_values": array}`` out.

    Images: a PIL.Image (when Pillow is installed), an HWC (or HW) uint8 numpy array, a file path,
    or the bytes of an encoded file (JPEG, PNG, WebP, BMP, PNM), one or a list. backend="pil"
    (default) gives the PIL processor's numbers bit for bit; "torchvision" transformers 5's default
    class, within one uint8 step."""

    def __init__(self, backend="pil", **kwargs):
        unknown = set(kwargs) - _PROCESSOR_KEYS - {"image_processor_type", "processor_class"}
        if unknown:
            raise ValueError(f"unknown ConvNextImageProcessor arguments: {sorted(unknown)}")
        self._p = _core.Processor(_json.dumps(kwargs), backend)
        self._backend = backend

    @classmethod
    def from_pretrained(cls, path, backend="pil", **unused):
        """preprocessor_config.json of a directory (or the file itself); class defaults without one."""
        p = cls.__new__(cls)
        p._p = _core.Processor.from_pretrained(_path(path), backend)
        p._backend = backend
        return p

    def to_dict(self):
        return _json.loads(self._p.config_json())

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.to_dict()
        if name in d:
            return d[name]
        raise AttributeError(f"'ConvNextImageProcessor' object has no attribute '{name}'")

    def save_pretrained(self, directory):
        _os.makedirs(directory, exist_ok=True)
        self._p.save_pretrained(_os.fspath(directory))

    def _decoded(self, image, channels):
        if isinstance(image, (str, _os.PathLike)):
            return _core.load_image(_os.fspath(image), channels)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return _core.decode_image(bytes(image), channels)
        if type(image).__module__.startswith("PIL."):
            return _np.asarray(image.convert("L" if channels == 1 else "RGB"))
        a = _np.asarray(image)
        if a.dtype != _np.uint8:
            raise ValueError(f"an image array must be uint8 (HWC or HW), got {a.dtype}")
        if a.ndim == 3 and a.shape[2] == 3 and channels == 1:
            raise ValueError("this processor takes grey images (HW or HWC with 1 channel)")
        if a.ndim == 2 and channels == 3:
            a = _np.repeat(a[:, :, None], 3, axis=2)
        return a

    def __call__(self, images, return_tensors="np", channels=None, **unused):
        return self.preprocess(images, return_tensors=return_tensors, channels=channels)

    def preprocess(self, images, return_tensors="np", channels=None, **unused):
        """→ {"pixel_values": [N, C, S, S] float32}; return_tensors "np" (default) or "pt" (torch)."""
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        ch = channels or self._p.channels()
        arrays = [self._decoded(i, ch) for i in items]
        px = self._p.preprocess(arrays)
        if return_tensors == "pt":
            import torch

            px = torch.from_numpy(px)
        elif return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors must be 'np' or 'pt', not {return_tensors!r}")
        return BatchFeature({"pixel_values": px})


class BatchFeature(dict):
    """transformers' BatchFeature: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# ---- pipeline -----------------------------------------------------------------------------------


class ImageClassificationPipeline:
    """transformers' image-classification pipeline: images → [{"label", "score"}], best first."""

    def __init__(self, model, image_processor=None, batch_size=8, num_threads=None, dtype="float32"):
        if isinstance(model, ConvNextForImageClassification):
            self.model = model
            if image_processor is None:
                raise ValueError("give image_processor= with a model object, or pass the model's path")
        else:
            self.model = ConvNextForImageClassification.from_pretrained(model, dtype=dtype, num_threads=num_threads)
        self.image_processor = image_processor or ConvNextImageProcessor.from_pretrained(model)
        self.batch_size = batch_size

    def __call__(self, images, top_k=5, function_to_apply=None, batch_size=None):
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        k = min(int(top_k), max(1, self.model.config.num_labels))
        fn = function_to_apply or "auto"
        fn = getattr(fn, "value", fn)  # transformers' ClassificationFunction enum
        channels = self.image_processor._p.channels_for(self.model.config.num_channels)
        out = []
        bs = batch_size or self.batch_size
        for i in range(0, len(items), bs):
            px = self.image_processor(items[i : i + bs], channels=channels)["pixel_values"]
            logits = self.model(pixel_values=px).logits
            for row in self.model._m.top_k(logits, k, str(fn).lower()):
                out.append([{"label": label, "score": float(score)} for label, _, score in row])
        return out[0] if single else out


def pipeline(task="image-classification", model=None, image_processor=None, batch_size=8, num_threads=None,
             dtype="float32", **unused):
    """``pipeline("image-classification", model=path_or_hub_id)``, as transformers'."""
    if task != "image-classification":
        raise ValueError(f"convnext's pipeline does image-classification only, not {task!r}")
    if model is None:
        raise ValueError("pipeline needs model= (a directory or a hub id in the local cache)")
    return ImageClassificationPipeline(_path(model) if not isinstance(model, _PreTrainedModel) else model,
                                       image_processor=image_processor, batch_size=batch_size,
                                       num_threads=num_threads, dtype=dtype)


# ---- training -----------------------------------------------------------------------------------


def train(model=None, data=None, output_dir=None, progress=None, **options):
    """Trains or fine-tunes as ``convnext train`` does; the keyword arguments are its flags with '_'
    for '-' (epochs, steps, batch_size, lr, lr_scheduler, warmup_steps, eval_data, no_augment, ...).

    model: a checkpoint directory to fine-tune (or give config= / arch= for a fresh model).
    progress: called with each log.jsonl record (a dict: step means, evaluations, the summary).
    Returns the final metrics: the summary merged with the last evaluation, as a dict."""
    kw = dict(options)
    if model is not None:
        kw["model"] = _os.fspath(model)
    if data is not None:
        kw["data"] = _os.fspath(data)
    if output_dir is not None:
        kw["output"] = _os.fspath(output_dir)
    records = []

    def on_log(line):
        rec = _json.loads(line)
        records.append(rec)
        if progress is not None:
            progress(rec)

    status = _core.train(kw, on_log)
    result = {}
    for rec in records:
        if "eval_loss" in rec:
            result.update(rec)
    for rec in records:
        if "done" in rec:
            result.update(rec)
    if status != 0:
        raise RuntimeError(f"training stopped with status {status} (interrupted); a checkpoint is in {kw.get('output')}")
    return result
