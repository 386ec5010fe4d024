"""Users' own Keras models around a keras.applications backbone, for the Keras runner: built from a Head, named,
checked and run layer by layer. `keras` is passed in: nothing here imports a framework (the runner does).

A user's model is the backbone nested as one layer (keras-nested, keras-sequential) or its layers in the model
itself (keras-flat), then the head's layers (graph.py reads which). Its tensors are named as porting names the
standard model's: the backbone's layers by the family's structural names (KerasModel.layer_names: the automatic
names of a nested backbone differ by process, PORTING_NOTES 9), the head's by their own names, `{layer}/{variable}`.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import numpy as np

from porting.errors import PortingError, first_line
from porting.heads import Head
from porting.sources.keras.graph import KERAS_ALPHA, KerasGraph, signature

KERAS_LAYOUTS = ("keras-nested", "keras-flat", "keras-sequential")


@dataclass
class OwnModel:
    """A loaded or built user's model and how porting sees it."""

    model: object  # the keras.Model
    head: Head
    backbone: object  # the nested keras.Model, or the model itself (keras-flat)
    names: dict[int, str]  # id(layer) -> porting's name for every layer below
    layers: list  # every layer in the order it computes: the backbone's, then the head's (pooling included)
    features: object  # the backbone's layer that gives the last feature map
    size: int | None  # the square input size the model is fixed at (None: free)

    @property
    def nested(self) -> bool:
        return self.backbone is not self.model

    def by_name(self) -> dict[str, object]:
        return {self.names[id(layer)]: layer for layer in self.layers}

    def in_backbone(self, layer) -> bool:
        return self.nested and any(layer is inner for inner in self.backbone.layers)


def describe(keras, family, model, head: Head, where: str) -> OwnModel:
    """How porting names and runs `model`, a user's model holding `family`'s backbone (a KerasModel)."""
    inputs = (keras.layers.InputLayer,)
    if head.layout == "keras-flat":
        backbone = model
        names = family.layer_names(keras, model)
        layers = [layer for layer in model.layers if not isinstance(layer, inputs)]
    else:
        nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if len(nested) != 1:
            raise PortingError(f"'{where}': {len(nested)} nested models where porting expects the backbone alone")
        backbone = nested[0]
        names = family.layer_names(keras, backbone)
        outer = [layer for layer in model.layers if layer is not backbone and not isinstance(layer, inputs)]
        names.update({id(layer): layer.name for layer in outer})
        layers = [layer for layer in backbone.layers if not isinstance(layer, inputs)] + outer
    taken = [names[id(layer)] for layer in layers]
    clash = sorted({n for n in taken if taken.count(n) > 1})
    if clash:
        raise PortingError(f"'{where}': two layers are named '{clash[0]}' (the head's and the backbone's)")
    missing = [layer.name for layer in head.layers if layer.name not in taken]
    if missing:
        raise PortingError(f"'{where}': the model has no head layer(s) {', '.join(missing)}")
    features = next((layer for layer in layers if layer.name == family.features_layer), None)
    if features is None:
        raise PortingError(f"'{where}': no layer '{family.features_layer}' in its backbone")
    size = model.input_shape[1]
    return OwnModel(model, head, backbone, names, layers, features, int(size) if size else None)


# ----------------------------------------------------------------------------------------------- building

def _activation(layer) -> str | None:
    """A dense layer's fused activation as Keras's string (its leaky_relu and elu parameters are fixed)."""
    if layer.activation in KERAS_ALPHA and layer.alpha != KERAS_ALPHA[layer.activation]:
        raise PortingError(f"head layer '{layer.name}': Keras's Dense(activation='{layer.activation}') has alpha "
                           f"{KERAS_ALPHA[layer.activation]:g}, not {layer.alpha:g}")
    return layer.activation or None


def head_layers(keras, head: Head) -> list:
    """The head as new Keras layers, each under its own name (the pooling under Keras's automatic one)."""
    pools = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
             "flatten": keras.layers.Flatten}
    out = [pools[head.pooling]()] if head.pooling in pools else []
    for layer in head.layers:
        if layer.kind == "dense":
            out.append(keras.layers.Dense(layer.units, activation=_activation(layer), use_bias=layer.bias,
                                          name=layer.name))
        elif layer.kind == "batchnorm":
            out.append(keras.layers.BatchNormalization(epsilon=layer.eps, momentum=layer.momentum, name=layer.name))
        elif layer.kind == "dropout":
            out.append(keras.layers.Dropout(layer.rate, name=layer.name))
        elif layer.activation == "leaky_relu":
            out.append(keras.layers.LeakyReLU(negative_slope=layer.alpha, name=layer.name))
        elif layer.activation == "elu":
            out.append(keras.layers.ELU(alpha=layer.alpha, name=layer.name))
        else:
            out.append(keras.layers.Activation(layer.activation, name=layer.name))
    return out


def build(keras, family, head: Head, size: int):
    """The user's model as `head.layout` says: keras.applications' backbone (include_top=False, untrained) nested
    as one layer (called with training=False where the source ran it so; frozen where it was), flat, or in a
    Sequential, then the head."""
    if head.layout not in KERAS_LAYOUTS:
        raise PortingError(f"a head laid out as '{head.layout}' (timm's or Paddle's nn.Sequential) has no Keras "
                           f"form here; the keras runner writes {', '.join(KERAS_LAYOUTS)} models")
    if head.layout != "keras-nested" and head.backbone_bn == "inference" and head.backbone_trainable:
        # only a nested call says training=False; flat and Sequential models keep BNs on their statistics by freezing
        raise PortingError(f"a {head.layout.removeprefix('keras-')} Keras model cannot keep a trainable backbone's "
                           f"BatchNorms on their moving statistics (only a nested call with training=False does)")
    # include_top=False with pooling 'avg' / 'max' and nothing after: keras.applications' own pooling layer
    own_pooling = head.layout == "keras-flat" and not head.layers and head.pooling in ("avg", "max")
    base = getattr(keras.applications, family.constructor)(weights=None, include_top=False,
                                                            input_shape=(size, size, 3),
                                                            pooling=head.pooling if own_pooling else None)
    chain = [] if own_pooling else head_layers(keras, head)
    try:
        if head.layout == "keras-flat":
            for layer in base.layers:
                layer.trainable = head.backbone_trainable
            x = base.output
            for layer in chain:
                x = layer(x)
            return keras.Model(base.input, x)
        base.trainable = head.backbone_trainable
        if head.layout == "keras-sequential":
            return keras.Sequential([keras.Input((size, size, 3)), base, *chain])
        inputs = keras.Input((size, size, 3))
        x = base(inputs, training=False) if head.backbone_bn == "inference" else base(inputs)
        for layer in chain:
            x = layer(x)
        return keras.Model(inputs, x)
    except ValueError as exc:  # two layers of one name...
        raise PortingError(f"cannot build the keras model of head {head.describe()}: {first_line(exc)}") from None


def check_backbone(keras, family, graph: KerasGraph, where: str) -> None:
    """The file's backbone computes as keras.applications' own (include_top=False): layer for layer the same
    classes, configs and connections, whatever the layers are called. Compared on the file's JSON, before Keras
    loads it: a layer keras.applications does not have, even one without weights, is refused here."""
    size = graph.input_size or family.size
    reference = getattr(keras.applications, family.constructor)(weights=None, include_top=False,
                                                                 input_shape=(size, size, 3))
    theirs = json.loads(reference.to_json())["config"]["layers"]
    del reference
    ours, want = signature(list(graph.backbone_layers)), signature(theirs)
    for i, (a, b) in enumerate(zip(ours, want)):
        if a != b:
            raw = graph.backbone_layers[i]
            name = raw.get("name") or raw.get("config", {}).get("name")
            raise PortingError(f"'{where}': its backbone is not keras.applications.{family.constructor}'s: layer {i} "
                               f"'{name}' ({raw.get('class_name')}) differs from keras.applications' "
                               f"'{theirs[i].get('name')}' ({theirs[i].get('class_name')})")
    if len(ours) != len(want):
        raise PortingError(f"'{where}': its backbone has {len(ours)} layers; keras.applications."
                           f"{family.constructor}'s (include_top=False) has {len(want)}")


# ----------------------------------------------------------------------------------------------- running

def _listed(values) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def outputs(keras, own: OwnModel, x, names: list[str], tensor: str) -> tuple[dict, np.ndarray]:
    """({layer: its `tensor` ('input' / 'output')}, logits) at inference: the logits are the user's whole model's;
    the backbone's layers inside a nested model from a sub-model of the backbone, the head's from a sub-model of
    the user's own graph."""
    by_name = own.by_name()
    inside = [n for n in names if own.in_backbone(by_name[n])]
    outside = [n for n in names if n not in inside]
    found = {}
    if inside:
        sub = keras.Model(own.backbone.inputs[0], [getattr(by_name[n], tensor) for n in inside])
        found.update(zip(inside, _listed(sub(x, training=False))))
    sub = keras.Model(own.model.inputs[0], [getattr(by_name[n], tensor) for n in outside] + [own.model.outputs[0]])
    *values, logits = _listed(sub(x, training=False))
    found.update(zip(outside, values))
    return found, logits


@contextlib.contextmanager
def all_trainable(own: OwnModel):
    """Every layer trainable for a while (a frozen Keras BatchNormalization runs on its moving statistics even in
    training); each layer's own setting restored after (the nested model's first: it sets its layers')."""
    saved = ([(own.backbone, own.backbone.trainable)] if own.nested else []) + [
        (layer, layer.trainable) for layer in own.layers]
    for layer, _ in saved:
        layer.trainable = True
    try:
        yield
    finally:
        for layer, value in saved:
            layer.trainable = value


def bn_inputs_in_training(keras, own: OwnModel, x, bns: list[str]) -> dict:
    """Each named BatchNormalization's input in one training-mode pass, every BN on batch statistics (the head's
    too, whatever training=False the user's graph calls the backbone with): the backbone as a sub-model, then the
    head's layers one after the other on its feature map, its dropout off."""
    by_name = own.by_name()
    with all_trainable(own):
        inside = [n for n in bns if own.in_backbone(by_name[n]) or not own.nested and
                  own.layers.index(by_name[n]) <= own.layers.index(own.features)]
        start = own.backbone.inputs[0] if own.nested else own.model.inputs[0]
        end = own.backbone.outputs[0] if own.nested else own.features.output
        *values, y = _listed(keras.Model(start, [by_name[n].input for n in inside] + [end])(x, training=True))
        found = dict(zip(inside, values))
        after = [layer for layer in own.layers if not own.in_backbone(layer)]
        if not own.nested:
            after = own.layers[own.layers.index(own.features) + 1:]
        for layer in after:
            name = own.names[id(layer)]
            is_bn = isinstance(layer, keras.layers.BatchNormalization)
            if name in bns:
                found[name] = y
            y = layer(y, training=is_bn)
    return found
