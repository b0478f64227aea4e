# Type stubs of the convnext package (the classes are in __init__.py, the engine in _core).
from os import PathLike
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathType = Union[str, PathLike]
ArrayLike = Any  # numpy arrays, torch tensors, anything with __array__ or __dlpack__
ImageInput = Any  # PIL.Image, HWC/HW uint8 array, file path, encoded bytes

def set_num_threads(n: int) -> None: ...
def num_threads() -> int: ...

class ConvNextConfig:
    model_type: str
    num_channels: int
    patch_size: int
    num_stages: int
    hidden_sizes: List[int]
    depths: List[int]
    hidden_act: str
    initializer_range: float
    layer_norm_eps: float
    layer_scale_init_value: float
    drop_path_rate: float
    image_size: int
    out_features: List[str]
    out_indices: List[int]
    id2label: Dict[int, str]
    label2id: Dict[str, int]
    num_labels: int
    problem_type: Optional[str]
    def __init__(self, **kwargs: Any) -> None: ...
    @classmethod
    def from_pretrained(cls, path: PathType, **kwargs: Any) -> "ConvNextConfig": ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json_string(self) -> str: ...
    def save_pretrained(self, directory: PathType) -> None: ...
    def __getattr__(self, name: str) -> Any: ...

class ConvNextV2Config(ConvNextConfig):
    @classmethod
    def from_pretrained(cls, path: PathType, **kwargs: Any) -> "ConvNextV2Config": ...

class ModelOutput(Dict[str, Any]):
    def __getattr__(self, name: str) -> Any: ...
    def to_tuple(self) -> Tuple[Any, ...]: ...

class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    last_hidden_state: npt.NDArray[np.float32]
    pooler_output: npt.NDArray[np.float32]
    hidden_states: Optional[Tuple[npt.NDArray[np.float32], ...]]

class ImageClassifierOutputWithNoAttention(ModelOutput):
    loss: Optional[np.float32]
    logits: npt.NDArray[np.float32]
    hidden_states: Optional[Tuple[npt.NDArray[np.float32], ...]]
    pooler_output: npt.NDArray[np.float32]
    last_hidden_state: npt.NDArray[np.float32]

class BackboneOutput(ModelOutput):
    feature_maps: Tuple[npt.NDArray[np.float32], ...]
    hidden_states: Optional[Tuple[npt.NDArray[np.float32], ...]]

class _PreTrainedModel:
    def __init__(self, config: ConvNextConfig, seed: int = ..., num_threads: Optional[int] = ...) -> None: ...
    @classmethod
    def from_pretrained(cls, path: PathType, dtype: Any = ..., num_threads: Optional[int] = ..., torch_dtype: Any = ...,
                        num_labels: Optional[int] = ..., ignore_mismatched_sizes: bool = ...,
                        inference_only: bool = ..., **unused: Any) -> Any: ...
    @property
    def config(self) -> ConvNextConfig: ...
    @property
    def dtype(self) -> str: ...
    def num_parameters(self) -> int: ...
    def save_pretrained(self, directory: PathType, dtype: str = ...) -> None: ...
    def eval(self) -> Any: ...
    def to(self, *args: Any, **kwargs: Any) -> Any: ...

class ConvNextModel(_PreTrainedModel):
    def __call__(self, pixel_values: ArrayLike = ..., labels: Any = ..., output_hidden_states: bool = ...,
                 return_dict: bool = ..., **unused: Any) -> BaseModelOutputWithPoolingAndNoAttention: ...
    def forward(self, pixel_values: ArrayLike = ..., labels: Any = ...,
                output_hidden_states: bool = ...) -> BaseModelOutputWithPoolingAndNoAttention: ...

class ConvNextForImageClassification(_PreTrainedModel):
    def __call__(self, pixel_values: ArrayLike = ..., labels: Optional[ArrayLike] = ..., output_hidden_states: bool = ...,
                 return_dict: bool = ..., **unused: Any) -> ImageClassifierOutputWithNoAttention: ...
    def forward(self, pixel_values: ArrayLike = ..., labels: Optional[ArrayLike] = ...,
                output_hidden_states: bool = ...) -> ImageClassifierOutputWithNoAttention: ...

class ConvNextBackbone(_PreTrainedModel):
    def __call__(self, pixel_values: ArrayLike = ..., labels: Any = ..., output_hidden_states: bool = ...,
                 return_dict: bool = ..., **unused: Any) -> BackboneOutput: ...
    def forward(self, pixel_values: ArrayLike = ..., labels: Any = ..., output_hidden_states: bool = ...) -> BackboneOutput: ...

class ConvNextV2Model(ConvNextModel): ...
class ConvNextV2ForImageClassification(ConvNextForImageClassification): ...
class ConvNextV2Backbone(ConvNextBackbone): ...

class BatchFeature(Dict[str, Any]):
    pixel_values: Any

class ConvNextImageProcessor:
    def __init__(self, backend: str = ..., **kwargs: Any) -> None: ...
    @classmethod
    def from_pretrained(cls, path: PathType, backend: str = ..., **unused: Any) -> "ConvNextImageProcessor": ...
    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]], return_tensors: Optional[str] = ...,
                 channels: Optional[int] = ..., **unused: Any) -> BatchFeature: ...
    def preprocess(self, images: Union[ImageInput, Sequence[ImageInput]], return_tensors: Optional[str] = ...,
                   channels: Optional[int] = ..., **unused: Any) -> BatchFeature: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def save_pretrained(self, directory: PathType) -> None: ...

class ImageClassificationPipeline:
    model: ConvNextForImageClassification
    image_processor: ConvNextImageProcessor
    batch_size: int
    def __init__(self, model: Union[PathType, ConvNextForImageClassification],
                 image_processor: Optional[ConvNextImageProcessor] = ..., batch_size: int = ...,
                 num_threads: Optional[int] = ..., dtype: str = ...) -> None: ...
    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]], top_k: int = ...,
                 function_to_apply: Optional[str] = ..., batch_size: Optional[int] = ...) -> Any: ...

def pipeline(task: str = ..., model: Any = ..., image_processor: Optional[ConvNextImageProcessor] = ...,
             batch_size: int = ..., num_threads: Optional[int] = ..., dtype: str = ...,
             **unused: Any) -> ImageClassificationPipeline: ...

def train(model: Optional[PathType] = ..., data: Optional[PathType] = ..., output_dir: Optional[PathType] = ...,
          progress: Optional[Callable[[Dict[str, Any]], None]] = ..., **options: Any) -> Dict[str, Any]: ...
