"""One convention object per source framework: how it names and lays out the tensors of a layer.

Per-model tables (porting/archs/<arch>/from_<source>.py) say only which source layer becomes which MindSpore
cell; the names of the tensors inside a layer, their layouts and what is never ported come from here (as
transformers keeps its TransposeType and name converters in one place).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from porting.errors import PortingError
from porting.weight_maps.table import COPY, DEPTHWISE_HWC1_TO_C1HW, HWIO_TO_OIHW, IN_OUT_TO_OUT_IN, Transform, WeightMap


@dataclass(frozen=True)
class Convention:
    source: str
    bn: dict[str, str]  # the source's BN tensor names -> MindSpore's gamma / beta / moving_mean / moving_variance
    sep: str = "."  # between a layer's path and its tensor names (Keras 3 paths: 'layer/kernel')
    weight: str = "weight"
    depthwise_weight: str = "weight"
    dense_weight: str | None = None  # None: `weight`
    bias: str = "bias"
    conv_layout: Transform = COPY  # the source's conv kernel -> MindSpore OIHW
    depthwise_layout: Transform = COPY
    dense_layout: Transform = COPY  # the source's dense weight -> MindSpore [out, in]
    unit: tuple[str, str] = ("conv", "bn")  # the conv and the BN inside the source's conv+BN unit
    ignore: tuple[str, ...] = field(default=())  # fnmatch patterns of source tensors that are never ported

    def map(self, name: str) -> WeightMap:
        return WeightMap(name, ignore=list(self.ignore), convention=self)


# PyTorch: OIHW kernels and [out, in] dense weights as MindSpore; BatchNorm's step counter is not a weight.
TIMM = Convention("timm", {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                           "running_var": "moving_variance"}, ignore=("*.num_batches_tracked",))
# Paddle: BatchNorm / BatchNorm2D tensors weight/bias/_mean/_variance, Linear stored [in, out], ConvBNLayer
# children `_conv` / `_batch_norm`.
PADDLECLAS = Convention("paddleclas", {"weight": "gamma", "bias": "beta", "_mean": "moving_mean",
                                       "_variance": "moving_variance"},
                        dense_layout=IN_OUT_TO_OUT_IN, unit=("_conv", "_batch_norm"))
# Keras 3: 'layer/variable' paths; Conv2D kernel [kh, kw, in, out], DepthwiseConv [kh, kw, C, 1], Dense [in, out].
KERAS = Convention("keras", {name: name for name in ("gamma", "beta", "moving_mean", "moving_variance")}, sep="/",
                   weight="kernel", depthwise_weight="depthwise_kernel", dense_weight="kernel",
                   conv_layout=HWIO_TO_OIHW, depthwise_layout=DEPTHWISE_HWC1_TO_C1HW, dense_layout=IN_OUT_TO_OUT_IN)
# mindcv: MindSpore itself, so MindSpore's names and layouts.
MINDCV = Convention("mindcv", {name: name for name in ("gamma", "beta", "moving_mean", "moving_variance")})
# the MindSpore model zoo: MindSpore too
MODELZOO = replace(MINDCV, source="modelzoo")


MINDSPORE_BN = ("gamma", "beta", "moving_mean", "moving_variance")


def renamed_source(wm: WeightMap, name: str, rename: Callable[[str], str | None],
                   rename_tap: Callable[[str], str | None] | None = None, convention=None) -> WeightMap:
    """`wm` for a MindSpore re-implementation of its source model (mindcv re-implements timm's, the model zoo's
    networks are mindcv's ancestors): every source module path passed through `rename`, BN tensors under
    MindSpore's names (the target's own), the rest as is. Layers go through `rename_tap` (default `rename`); one
    without a cell of its own there (None) is not compared. `convention`: the MindSpore library's (mindcv's)."""
    out = (convention or MINDCV).map(name)
    for row in wm.rows:
        module, leaf = row.source.rsplit(".", 1)
        target_leaf = row.target.rsplit(".", 1)[1]
        out.add(f"{rename(module)}.{target_leaf if target_leaf in MINDSPORE_BN else leaf}", row.target,
                row.transform)
    for layer in wm.layers:
        source = (rename_tap or rename)(layer.source)
        if source is not None:
            out.layer(source, layer.target, layer.kind)
    return out


# ----------------------------------------------------------------------------------------------- Keras models

@dataclass(frozen=True)
class KerasModel:
    """One keras.applications model as the Keras runner builds and names it (its family declares it, in
    from_keras.py: KERAS_MODEL). `keras` is passed in: nothing here imports a framework."""

    name: str  # porting's source name: keras:NAME
    constructor: str  # its keras.applications function
    size: int  # its default input size (with include_top, the size it is built at unless input_shape says)
    head: str  # its classifier Dense layer
    preprocess_module: str  # keras.applications.<module>.preprocess_input
    mean_std: float = 0.5  # preprocess_input mode 'tf' (x / 127.5 - 1): mean = std = 0.5
    # its last feature map (include_top=False ends there): the layer and its channels, where a user's head begins
    features_layer: str = ""
    features: int = 0

    def build(self, keras, num_classes: int, size: int | None = None, weights=None):
        # classifier_activation=None: the head outputs logits, not softmax probabilities
        size = size or self.size
        return getattr(keras.applications, self.constructor)(
            weights=weights, classes=num_classes, classifier_activation=None,
            input_shape=None if weights == "imagenet" else (size, size, 3))

    def layer_names(self, keras, model) -> dict[int, str]:
        """id(layer) -> a name that does not depend on what else the process built; checked unique."""
        names = {id(layer): layer.name for layer in model.layers}
        if len(set(names.values())) != len(names):
            raise PortingError(f"keras model '{model.name}' has two layers of one name")
        return names
