"""How a source library names and lays out the tensors of a layer: its `Convention`.

Per-model tables (porting/archs/<arch>/from_<source>.py) say only which source layer becomes which MindSpore
cell; the names of the tensors inside a layer, their layouts and what is never ported come from the library's
convention (as transformers keeps its TransposeType and name converters in one place). Each library's record
(porting/sources/<library>/__init__.py) holds its convention; the records sit above the weight maps, so a weight
map is handed it (`build(spec, convention)`) by whoever builds it (porting.specs.build_weight_map).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from porting.errors import PortingError
from porting.weight_maps.table import COPY, Transform, WeightMap

MINDSPORE_BN = ("gamma", "beta", "moving_mean", "moving_variance")


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

    @classmethod
    def mindspore(cls, source: str) -> Convention:
        """A library written in MindSpore itself (mindcv, the model zoo): MindSpore's names and layouts."""
        return cls(source, {name: name for name in MINDSPORE_BN})

    def map(self, name: str) -> WeightMap:
        return WeightMap(name, ignore=list(self.ignore), convention=self)


def renamed_source(wm: WeightMap, name: str, rename: Callable[[str], str | None],
                   rename_tap: Callable[[str], str | None] | None = None) -> WeightMap:
    """`wm` for a MindSpore re-implementation of another library's model (mindcv re-implements timm's, the model
    zoo's networks are mindcv's ancestors): `wm` is that model's table built in the MindSpore library's convention
    (`wm.convention`: MindSpore's tensor names), and every source module path goes through `rename`. Layers go
    through `rename_tap` (default `rename`); one without a cell of its own there (None) is not compared."""
    out = wm.convention.map(name)
    for row in wm.rows:
        module, leaf = row.source.rsplit(".", 1)
        out.add(f"{rename(module)}.{leaf}", row.target, row.transform)
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
