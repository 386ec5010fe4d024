"""A Keras model file's graph, read as JSON: the user's own model around a keras.applications backbone.

A `.keras` archive keeps its graph in `config.json`, a legacy `.h5` in its `model_config` attribute. Both are read
here as plain JSON, before Keras deserializes anything: a Lambda's code never runs, a custom class is never looked
up. What is accepted is what Keras's transfer-learning guide builds (PORTING_NOTES 9):

    nested      keras.Model(inputs, head(base(inputs, training=False)))  the backbone one layer of the model
    flat        keras.Model(base.input, head(base.output))               the backbone's layers in the model
    sequential  keras.Sequential([keras.Input(...), base, *head])

where `head` is a chain of GlobalAveragePooling2D / GlobalMaxPooling2D / Flatten, then Dense (and its activation),
BatchNormalization on vectors, Activation / ReLU / LeakyReLU / ELU / Softmax layers and Dropout; include_top=False
files (pooling None, 'avg', 'max') are headless. The result is a porting.heads.Head (layout keras-nested,
keras-flat or keras-sequential); keras.applications' own model with its classifier is no custom head (None), as
porting always read it. Anything else is refused in one line naming the layer. No framework here (h5py reads the
legacy file's attribute); the Keras runner checks the backbone's layers against keras.applications' own
(`signature`) before it lets Keras load the file.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

from porting.errors import PortingError, first_line
from porting.heads import Head, HeadLayer, canonical_activation

POOLINGS = {"GlobalAveragePooling2D": "avg", "GlobalMaxPooling2D": "max", "Flatten": "flatten"}
HEAD_LAYERS = ("Dense", "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout")
MODELS = ("Functional", "Model", "Sequential")  # a model nested as one layer ('Model': Keras 2's name)
# keras.activations' own defaults, where the string names a function with a parameter
KERAS_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}
TAKES = ", ".join((*POOLINGS, *HEAD_LAYERS))
# what a layer's config says about what it computes (the rest: names, dtypes, initialisers, Keras versions' extras)
STRUCTURAL = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups", "activation",
              "use_bias", "depth_multiplier", "pool_size", "epsilon", "center", "scale", "axis", "units", "keepdims",
              "rate", "max_value", "negative_slope", "threshold", "batch_shape", "batch_input_shape")


@dataclass(frozen=True)
class KerasGraph:
    """What porting reads of a whole-model file."""

    head: Head | None  # None: keras.applications' own model with its classifier (the library's standard head)
    input_size: int | None  # the model's square input size; None where the file leaves it free
    backbone: str  # the nested backbone's layer name ('' when the backbone's layers are the model's own)
    backbone_layers: tuple[dict, ...]  # the backbone's layer configs as the file states them (signature())


# ----------------------------------------------------------------------------------------------- the file

def read_config(path: str) -> dict | None:
    """The model's graph as JSON, or None for a file that holds weights only (.weights.h5, a weights-only .h5)."""
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        if path.endswith(".weights.h5"):
            return None
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise PortingError(f"cannot read the model's graph in '{path}': {first_line(exc)}") from None
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as exc:
        raise PortingError(f"'{path}': its model_config is not JSON: {first_line(exc)}") from None


def read_file(path: str, model) -> KerasGraph | None:
    """The graph of a whole-model file around `model` (a KerasModel: porting.weight_maps.conventions), or None
    for a weights-only file."""
    config = read_config(path)
    return None if config is None else read_graph(config, model, path)


def read_own_model(path: str, spec) -> tuple[Head, int | None] | None:
    """(head, input size) of a user's own model in a whole-model file (150 px in Keras's transfer-learning guide),
    or None: a weights-only file, keras.applications' own model with its classifier, a file that is not there (the
    worker says so). The record's read_own_model: parity knows the head and the size before the worker runs."""
    if not (os.path.isfile(path) and path.endswith((".keras", ".h5", ".hdf5"))):
        return None
    graph = read_file(path, spec.weight_map_module().KERAS_MODEL)
    return (graph.head, graph.input_size) if graph is not None and graph.head is not None else None


# ----------------------------------------------------------------------------------------------- its layers

@dataclass(frozen=True)
class Layer:
    """One layer of a model's config, whichever Keras wrote it."""

    name: str
    cls: str
    config: dict
    inputs: tuple[str, ...]  # the layers whose outputs its (first) call takes
    kwargs: dict  # that call's keyword arguments (training=False...)
    calls: int
    shape: tuple | None  # the shape of its input, where the file states it (Keras 3)
    custom: str  # why it is not one of Keras's own classes ('' when it is)
    raw: dict


def _tensors(value, found: list) -> None:
    """Collect (layer, shape) of every Keras 3 tensor reference in a call's arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config", {})
            found.append((cfg.get("keras_history", [""])[0], cfg.get("shape")))
        else:
            for item in value.values():
                _tensors(item, found)
    elif isinstance(value, list):
        for item in value:
            _tensors(item, found)


def _call(node) -> tuple[list[str], dict, tuple | None]:
    """(input layers, keyword arguments, first input's shape) of one call: Keras 3 writes {'args', 'kwargs'},
    Keras 2 a list of [layer, node, tensor, kwargs]."""
    if isinstance(node, dict):
        found: list = []
        _tensors(node.get("args", []), found)
        kwargs = {k: v for k, v in node.get("kwargs", {}).items() if not isinstance(v, (dict, list))}
        shape = tuple(found[0][1]) if found and found[0][1] else None
        return [name for name, _ in found], kwargs, shape
    names, kwargs = [], {}
    for entry in node:
        names.append(entry[0])
        if len(entry) > 3 and isinstance(entry[3], dict):
            kwargs.update({k: v for k, v in entry[3].items() if not isinstance(v, (dict, list))})
    return names, kwargs, None


def _custom(raw: dict) -> str:
    module, registered, cls = raw.get("module"), raw.get("registered_name"), raw.get("class_name", "")
    if module is not None and module != "keras" and not module.startswith("keras."):
        return f"a custom class from module '{module}'"
    if registered not in (None, cls):
        return f"a custom class registered as '{registered}'"
    return ""


def _layer(raw: dict) -> Layer:
    config = raw.get("config", {}) or {}
    nodes = raw.get("inbound_nodes", [])
    inputs, kwargs, shape = _call(nodes[0]) if nodes else ([], {}, None)
    if shape is None and isinstance(raw.get("build_config"), dict):
        built = raw["build_config"].get("input_shape")
        shape = tuple(built) if isinstance(built, list) and built and not isinstance(built[0], list) else None
    return Layer(raw.get("name") or config.get("name", ""), raw.get("class_name", ""), config, tuple(inputs),
                 kwargs, len(nodes), shape, _custom(raw), raw)


def _refs(value) -> list[str]:
    """The layer names of input_layers / output_layers: ['x', 0, 0] (Keras 3, one) or [['x', 0, 0], ...]."""
    if not value:
        return []
    if isinstance(value[0], str):
        return [value[0]]
    return [ref[0] for ref in value]


def _size(shape, where: str) -> int | None:
    """The square side of an input's [None, H, W, 3] shape (None when free)."""
    if not isinstance(shape, (list, tuple)) or len(shape) != 4:
        raise PortingError(f"'{where}': the model's input is {shape}, not one image batch [N, H, W, 3]")
    _, h, w, c = shape
    if c != 3:
        raise PortingError(f"'{where}': the model takes {c}-channel images; keras.applications backbones take 3")
    if h != w:
        raise PortingError(f"'{where}': the model takes {h}x{w} inputs; porting's models take square ones")
    return h


def _input_size(layer: Layer, where: str) -> int | None:
    shape = layer.config.get("batch_shape") or layer.config.get("batch_input_shape")
    return _size(shape, where) if shape is not None else None


def signature(layers: list[dict]) -> list[tuple]:
    """What the layers compute, whatever their names: per layer its class, the config entries that define its
    computation, and the positions of the layers it takes. Two backbones with equal signatures are one
    architecture (the Keras runner compares the file's with keras.applications' own)."""
    parsed = [_layer(raw) for raw in layers]
    position = {layer.name: i for i, layer in enumerate(parsed)}
    out = []
    for layer in parsed:
        config = {k: json.dumps(layer.config[k], sort_keys=True) for k in STRUCTURAL
                  if k in layer.config and k not in ("batch_shape", "batch_input_shape")}
        out.append((layer.cls, tuple(sorted(config.items())), tuple(position.get(n, -1) for n in layer.inputs)))
    return out


# ----------------------------------------------------------------------------------------------- the graph

def read_graph(config: dict, model, where: str) -> KerasGraph:
    """The head of a model config around `model`'s backbone (a KerasModel), or one line naming what is not."""
    cls, body = config.get("class_name"), config.get("config") or {}
    if cls == "Sequential":
        return _sequential(body, model, where)
    if cls not in ("Functional", "Model"):
        raise PortingError(f"'{where}' holds a Keras {cls}, not a functional or Sequential model")
    layers = [_layer(raw) for raw in body.get("layers", [])]
    by_name = {layer.name: layer for layer in layers}
    inputs, outputs = _refs(body.get("input_layers")), _refs(body.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise PortingError(f"'{where}': the model has {len(inputs)} inputs and {len(outputs)} outputs; porting reads "
                           f"models of one image input and one output")
    nested = [layer for layer in layers if layer.cls in MODELS]
    backbone = next((layer for layer in nested if _contains(layer, model.features_layer)), None)
    for layer in nested:
        if layer is not backbone:
            raise _refused(where, layer, "a model nested in the model that is not the backbone")
    if backbone is not None:
        return _nested(layers, by_name, inputs[0], outputs[0], backbone, model, where)
    if model.features_layer in by_name:
        return _flat(layers, by_name, inputs[0], outputs[0], model, where)
    raise PortingError(f"'{where}' holds no keras.applications.{model.constructor}: no nested model or layer named "
                       f"'{model.features_layer}' (its last feature map)")


def _contains(layer: Layer, name: str) -> bool:
    return any((raw.get("name") or raw.get("config", {}).get("name")) == name
               for raw in layer.config.get("layers", []))


def _refused(where: str, layer: Layer, why: str) -> PortingError:
    return PortingError(f"'{where}': layer '{layer.name}' ({layer.cls}) is {why}; porting reads a "
                        f"keras.applications backbone followed by {TAKES}")


def _check_own_classes(layers, where: str, part: str) -> None:
    """Every layer is one of Keras's own classes, and no Lambda (checked before Keras loads anything)."""
    for layer in layers:
        if layer.cls == "Lambda":
            raise _refused(where, layer, f"a Lambda in the {part} (its Python code is never run)")
        if layer.custom:
            raise _refused(where, layer, f"{layer.custom} in the {part} (porting never loads code from a file)")


def _chain(layers: list[Layer], start: str, output: str, where: str) -> list[Layer]:
    """The layers from `start`'s output to the model's output, each taking the one before alone."""
    consumers: dict[str, list[Layer]] = {}
    for layer in layers:
        for name in set(layer.inputs):
            consumers.setdefault(name, []).append(layer)
    chain, current = [], start
    while current != output:
        after = consumers.get(current, [])
        if len(after) != 1:
            names = ", ".join(f"'{layer.name}'" for layer in after) or "nothing"
            raise PortingError(f"'{where}': the head branches after '{current}' (taken by {names}); porting reads "
                               f"a head that is one chain of layers")
        layer = after[0]
        if len(layer.inputs) != 1 or layer.calls != 1:
            raise _refused(where, layer, f"a layer that merges {len(layer.inputs)} inputs" if len(layer.inputs) != 1
                           else f"called {layer.calls} times")
        chain.append(layer)
        current = layer.name
    return chain


def _inside(backbone: Layer, model, where: str) -> tuple[list[Layer], Layer | None]:
    """(the nested backbone's layers, its own global pooling where it ends in one: include_top=False with
    pooling='avg' / 'max'), checked: Keras's own classes, ending at the family's last feature map."""
    inner = [_layer(raw) for raw in backbone.config.get("layers", [])]
    _check_own_classes(inner, where, f"backbone '{backbone.name}'")
    by_name = {layer.name: layer for layer in inner}
    ends = _refs(backbone.config.get("output_layers"))
    if ends == [model.features_layer]:
        return inner, None
    last = by_name.get(ends[0]) if len(ends) == 1 else None
    if last is None or last.cls not in ("GlobalAveragePooling2D", "GlobalMaxPooling2D") \
            or last.inputs != (model.features_layer,):
        raise PortingError(f"'{where}': the backbone '{backbone.name}' ends in '{ends[0] if ends else 'nothing'}', "
                           f"not at its feature map '{model.features_layer}' or a global pooling of it: porting reads "
                           f"include_top=False backbones")
    return inner, last


def _nested(layers, by_name, input_name, output, backbone: Layer, model, where) -> KerasGraph:
    if backbone.calls != 1:
        raise PortingError(f"'{where}': the backbone '{backbone.name}' is called {backbone.calls} times")
    if backbone.inputs != (input_name,):
        before = by_name.get(backbone.inputs[0]) if backbone.inputs else None
        if before is not None:
            raise _refused(where, before, "a layer between the input and the backbone (porting's models take "
                                          "the backbone's own preprocessing, outside the model)")
        raise PortingError(f"'{where}': the backbone '{backbone.name}' does not take the model's input")
    inner, pooling = _inside(backbone, model, where)
    chain = _chain(layers, backbone.name, output, where)
    _check_own_classes(chain, where, "head")
    head = _head(([pooling] if pooling else []) + chain, _features(inner, model, where), "keras-nested", where,
                 **_backbone(backbone.config.get("trainable") is False or _all_frozen(inner),
                             backbone.kwargs.get("training") is False))
    size = _input_size(by_name[input_name], where)
    if size is None:  # a free outer input: the nested model's own
        first = next((layer for layer in inner if layer.cls == "InputLayer"), None)
        size = _input_size(first, where) if first else None
    return KerasGraph(head, size, backbone.name, tuple(layer.raw for layer in inner if layer is not pooling))


def _flat(layers, by_name, input_name, output, model, where) -> KerasGraph:
    ancestors, todo = set(), [model.features_layer]
    while todo:
        name = todo.pop()
        if name not in ancestors and name in by_name:
            ancestors.add(name)
            todo.extend(by_name[name].inputs)
    chain = _chain(layers, model.features_layer, output, where)
    strays = [layer for layer in layers if layer.name not in ancestors and layer not in chain]
    if strays:
        raise _refused(where, strays[0], "outside the backbone and the head's chain")
    backbone = [layer for layer in layers if layer.name in ancestors]
    _check_own_classes(backbone, where, "backbone")
    _check_own_classes(chain, where, "head")
    size = _input_size(by_name[input_name], where)
    if [(layer.cls, layer.name) for layer in chain] == [("GlobalAveragePooling2D", "avg_pool"), ("Dense", model.head)]:
        # keras.applications' own model with its classifier: no custom head, read as porting always has
        return KerasGraph(None, size, "", tuple(layer.raw for layer in backbone))
    head = _head(chain, _features(backbone, model, where), "keras-flat", where,
                 **_backbone(_all_frozen(backbone)))
    return KerasGraph(head, size, "", tuple(layer.raw for layer in backbone))


def _sequential(body: dict, model, where: str) -> KerasGraph:
    layers = [_layer(raw) for raw in body.get("layers", [])]
    size = _input_size(layers.pop(0), where) if layers and layers[0].cls == "InputLayer" else None
    if not layers:
        raise PortingError(f"'{where}': the Sequential model is empty")
    backbone, chain = layers[0], layers[1:]
    if backbone.cls not in MODELS or not _contains(backbone, model.features_layer):
        _check_own_classes([backbone], where, "model")
        raise _refused(where, backbone, f"the Sequential's first layer, where porting reads a keras.applications."
                                        f"{model.constructor} nested as one layer")
    if size is None:
        shape = body.get("build_input_shape") or backbone.config.get("batch_input_shape")
        size = _size(shape, where) if shape is not None else None
    inner, pooling = _inside(backbone, model, where)
    _check_own_classes(chain, where, "head")
    head = _head(([pooling] if pooling else []) + chain, _features(inner, model, where), "keras-sequential", where,
                 **_backbone(backbone.config.get("trainable") is False or _all_frozen(inner)))
    return KerasGraph(head, size, backbone.name, tuple(layer.raw for layer in inner if layer is not pooling))


# ----------------------------------------------------------------------------------------------- the head

WEIGHTED = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "BatchNormalization", "Dense")


def _backbone(frozen: bool, called_in_inference: bool = False) -> dict:
    """How the source trains the backbone (Head.backbone_bn, backbone_trainable): its BatchNorms stay on their
    moving statistics when it is called with training=False, and also when it is frozen (a Keras
    BatchNormalization with trainable False runs in inference mode, in fit() too)."""
    return {"backbone_bn": "inference" if frozen or called_in_inference else "train",
            "backbone_trainable": not frozen}


def _all_frozen(layers: list[Layer]) -> bool:
    """Every layer with weights has trainable False (base.trainable = False, saved per layer by Keras 3)."""
    weighted = [layer for layer in layers if layer.cls in WEIGHTED]
    return bool(weighted) and all(layer.config.get("trainable") is False for layer in weighted)


def _features(layers: list[Layer], model, where: str) -> int:
    """The channels of the backbone's last feature map: the family's, checked against the file where it says."""
    for layer in layers:
        if layer.name == model.features_layer and layer.shape and layer.shape[-1] != model.features:
            raise PortingError(f"'{where}': '{layer.name}' has {layer.shape[-1]} channels; keras.applications."
                               f"{model.constructor}'s has {model.features}")
    return model.features


def _head(chain: list[Layer], features: int, layout: str, where: str, **backbone) -> Head:
    """The chain after the backbone's feature map: a pooling first (or none), then layers on vectors."""
    pooling, map_size, rest = "none", None, chain
    if chain and chain[0].cls in POOLINGS:
        first, rest = chain[0], chain[1:]
        pooling = POOLINGS[first.cls]
        if first.config.get("data_format", "channels_last") != "channels_last":
            raise _refused(where, first, f"a pooling over {first.config['data_format']} maps (Keras's backbones "
                                         f"give channels_last ones)")
        if first.config.get("keepdims"):
            raise _refused(where, first, "a pooling that keeps the pooled dimensions (keepdims=True)")
        if pooling == "flatten":
            if not (first.shape and len(first.shape) == 4 and all(isinstance(v, int) for v in first.shape[1:3])):
                raise _refused(where, first, "a Flatten whose input size the file does not state (a Keras 2 file)")
            map_size = (first.shape[1], first.shape[2])
    layers = []
    for layer in rest:
        if layer.cls not in HEAD_LAYERS and layer.cls not in POOLINGS:  # a Conv2D, an attention...
            raise _refused(where, layer, "not a layer porting's heads compute")
        if pooling == "none" or layer.cls in POOLINGS:
            raise _refused(where, layer, "on the 4-D feature map (porting's heads pool or flatten it first)"
                           if pooling == "none" else "a second pooling in the head")
        layers.append(_head_layer(layer, where))
    head = Head(pooling, tuple(layers), features, map_size, layout, **backbone)
    head.check(where)
    return head


def _activation(layer: Layer, value, where: str) -> tuple[str, float]:
    """(porting's name, alpha) of a Keras activation given by name; Keras's leaky_relu slope is 0.2."""
    if not isinstance(value, str):
        raise _refused(where, layer, "a layer with a custom activation function")
    try:
        name = canonical_activation(value)
    except PortingError:
        raise _refused(where, layer, f"a layer with activation '{value}', which porting's heads do not compute") \
            from None
    return name, KERAS_ALPHA.get(name, 0.0)


def _head_layer(layer: Layer, where: str) -> HeadLayer:
    cfg, name = layer.config, layer.name
    if layer.cls == "Dense":
        if cfg.get("lora_rank") or cfg.get("quantization_config") or cfg.get("dtype") == "int8":
            raise _refused(where, layer, "a LoRA or quantized Dense")
        activation, alpha = _activation(layer, cfg.get("activation") or "linear", where)
        return HeadLayer("dense", name, units=int(cfg["units"]), bias=bool(cfg.get("use_bias", True)),
                         activation=activation, alpha=alpha)
    if layer.cls == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, 1, [-1], [1]) or (layer.shape and len(layer.shape) != 2):
            raise _refused(where, layer, "a BatchNormalization that is not over a vector's features")
        if cfg.get("center") is False or cfg.get("scale") is False or cfg.get("renorm"):
            raise _refused(where, layer, "a BatchNormalization without center or scale, or with renorm")
        return HeadLayer("batchnorm", name, eps=float(cfg.get("epsilon", 1e-3)),
                         momentum=float(cfg.get("momentum", 0.99)))  # Keras's momentum is MindSpore's
    if layer.cls == "Dropout":
        return HeadLayer("dropout", name, rate=float(cfg.get("rate", 0.0)))
    if layer.cls == "Activation":
        activation, alpha = _activation(layer, cfg.get("activation"), where)
        if not activation:
            raise _refused(where, layer, "an Activation('linear'), which computes nothing")
        return HeadLayer("activation", name, activation=activation, alpha=alpha)
    if layer.cls == "ReLU":
        top, slope, threshold = cfg.get("max_value"), float(cfg.get("negative_slope") or 0.0), cfg.get("threshold")
        if threshold not in (None, 0, 0.0) or top not in (None, 6, 6.0) or (top is not None and slope):
            raise _refused(where, layer, "a ReLU with a threshold or a ceiling other than 6")
        if slope:
            return HeadLayer("activation", name, activation="leaky_relu", alpha=slope)
        return HeadLayer("activation", name, activation="relu6" if top is not None else "relu")
    if layer.cls == "LeakyReLU":
        alpha = cfg.get("negative_slope", cfg.get("alpha", 0.3))  # Keras 3 / Keras 2 spelling
        return HeadLayer("activation", name, activation="leaky_relu", alpha=float(alpha))
    if layer.cls == "ELU":
        return HeadLayer("activation", name, activation="elu", alpha=float(cfg.get("alpha", 1.0)))
    if layer.cls == "Softmax":
        if cfg.get("axis", -1) not in (-1, 1, [-1], [1]):
            raise _refused(where, layer, "a Softmax over another axis than the classes")
        return HeadLayer("activation", name, activation="softmax")
    if layer.cls == "Lambda":
        raise _refused(where, layer, "a Lambda in the head (its Python code is never run)")
    raise _refused(where, layer, "not a layer porting's heads compute")
