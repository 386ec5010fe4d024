"""A classifier's head: what follows the backbone's last feature map, as one framework-free record.

Users bring models whose edges are their own: a Keras Xception nested in a functional model with GAP -> Dense(relu)
-> Dropout -> Dense, a timm SE-ResNeXt whose `fc` is an nn.Sequential, a backbone without any head. A `Head` says
what such a head computes (a pooling, then a short sequence of dense, 1-d BatchNorm, activation and dropout
layers), what the source calls each layer, and how the source laid it out, so that every side reads the same
record: the MindSpore model builds it, the weight maps map it, parity compares each of its layers, and the way back
writes it in the user's own shape. `--head` spells one for state dicts that carry no graph (timm, PaddleClas):

    linear:256,relu,dropout:0.3,linear:5     timm's nn.Sequential(Linear, ReLU, Dropout, Linear): fc.0 ... fc.3
    pool:max,linear:10                       global max pooling instead of average, then one dense
    none                                     no head: a feature extractor (timm num_classes=0)

No framework here (the card imports it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from porting.errors import PortingError

POOLINGS = ("avg", "max", "flatten", "none")  # global average / max, flatten at a fixed map size, no pooling
KINDS = ("dense", "batchnorm", "activation", "dropout")
ACTIVATIONS = ("relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu")
# other spellings of the same functions (Keras's, PyTorch's class names lower-cased); '' is no activation
ACTIVATION_ALIASES = {"swish": "silu", "leakyrelu": "leaky_relu", "linear": "", "identity": "", "none": ""}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}  # PyTorch's and Paddle's defaults (Keras's LeakyReLU: 0.3)
# how the source lays the head out, for the way back: an nn.Sequential / Paddle Sequential at the classifier's
# attribute ('module'), or a Keras model holding the keras.applications backbone nested as one layer, built flat on
# its output, or a Sequential
LAYOUTS = ("module", "keras-nested", "keras-flat", "keras-sequential")
BACKBONE_BN = ("train", "inference")


def canonical_activation(name: str) -> str:
    """'swish' -> 'silu', 'linear' -> ''; an unknown name is a one-line error listing the known ones."""
    key = name.strip().lower()
    key = ACTIVATION_ALIASES.get(key, key)
    if key and key not in ACTIVATIONS:
        raise PortingError(f"unknown activation '{name}': porting's heads take {', '.join(ACTIVATIONS)}")
    return key


@dataclass(frozen=True)
class HeadLayer:
    kind: str  # KINDS
    name: str = ""  # the source's own name for it: a Keras layer name ('dense_1'), a module path ('fc.3')
    units: int = 0  # dense: its outputs
    bias: bool = True  # dense
    activation: str = ""  # activation layers: which (ACTIVATIONS); dense: a fused one (Keras Dense(activation=))
    alpha: float = 0.0  # leaky_relu's negative slope, elu's alpha
    rate: float = 0.0  # dropout: the fraction dropped in training (identity at inference)
    eps: float = 1e-5  # batchnorm
    momentum: float = 0.9  # batchnorm, in MindSpore's convention (moving = m x moving + (1 - m) x batch)

    def describe(self) -> str:
        if self.kind == "dense":
            return f"dense {self.units}" + ("" if self.bias else " (no bias)") + (
                f" + {self.activation}" if self.activation else "")
        if self.kind == "activation":
            return self.activation + (f"({self.alpha:g})" if self.activation in DEFAULT_ALPHA else "")
        if self.kind == "dropout":
            return f"dropout {self.rate:g}"
        return f"batchnorm (eps {self.eps:g})"


@dataclass(frozen=True)
class Head:
    pooling: str = "avg"  # POOLINGS
    layers: tuple[HeadLayer, ...] = ()  # empty: no classifier, the model outputs its features
    features: int = 0  # channels of the backbone's last feature map, the pooling's input
    map_size: tuple[int, int] | None = None  # 'flatten': the (h, w) flattened, at the card's input size
    layout: str = "module"  # LAYOUTS
    # 'inference': the source runs the backbone's BatchNorms on their moving statistics also in training
    # (Keras's base(inputs, training=False)); fine-tuning keeps that unless asked otherwise
    backbone_bn: str = "train"
    backbone_trainable: bool = True  # False: the source froze the backbone (Keras's base.trainable = False)

    # --------------------------------------------------------------------------------- what it computes

    @property
    def headless(self) -> bool:
        """No dense layer at all: a feature extractor, whose output is named 'features'."""
        return not any(layer.kind == "dense" for layer in self.layers)

    @property
    def num_classes(self) -> int:
        """The last dense layer's outputs; 0 for a feature extractor."""
        dense = [layer for layer in self.layers if layer.kind == "dense"]
        return dense[-1].units if dense else 0

    @property
    def pooled(self) -> int:
        """The width of the vector the first layer takes."""
        if self.pooling == "flatten":
            h, w = self.map_size
            return self.features * h * w
        return self.features

    def widths(self) -> list[int]:
        """The width each layer takes (its input), in order."""
        out, width = [], self.pooled
        for layer in self.layers:
            out.append(width)
            if layer.kind == "dense":
                width = layer.units
        return out

    @property
    def last_dense(self) -> int | None:
        """The index of the classifier: the last dense layer (what --num-classes replaces)."""
        dense = [i for i, layer in enumerate(self.layers) if layer.kind == "dense"]
        return dense[-1] if dense else None

    def with_classes(self, num_classes: int, name: str = "") -> Head:
        """The same head with its last dense layer giving `num_classes`; a feature extractor gets one (`name`)."""
        i = self.last_dense
        if i is None:
            pooling = "avg" if self.pooling == "none" else self.pooling
            return dataclasses.replace(self, pooling=pooling,
                                       layers=(*self.layers, HeadLayer("dense", name, units=num_classes)))
        layers = list(self.layers)
        layers[i] = dataclasses.replace(layers[i], units=num_classes)
        return dataclasses.replace(self, layers=tuple(layers))

    def describe(self) -> str:
        """'avg pool -> dense 100 + relu -> dropout 0.2 -> dense 6', or '... -> features'."""
        pool = {"avg": "global average pool", "max": "global max pool", "none": "no pooling",
                "flatten": f"flatten {self.map_size[0]}x{self.map_size[1]}" if self.map_size else "flatten"}
        parts = [pool[self.pooling], *(layer.describe() for layer in self.layers)]
        return " -> ".join(parts + (["features"] if self.headless else []))

    # --------------------------------------------------------------------------------- reading and writing

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw["layers"] = [dataclasses.asdict(layer) for layer in self.layers]
        raw["map_size"] = list(self.map_size) if self.map_size else None
        return raw

    @classmethod
    def from_dict(cls, raw, where) -> Head:
        """A valid head from the card's JSON, or one line naming `where` and the field at fault."""
        if not isinstance(raw, dict):
            raise PortingError(f"'{where}': metadata 'custom_head' is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PortingError(f"'{where}': metadata 'custom_head' has unknown field(s) {', '.join(unknown)}")
        layer_fields = {f.name for f in dataclasses.fields(HeadLayer)}
        layers = raw.get("layers", [])
        if not isinstance(layers, list) or not all(isinstance(x, dict) and set(x) <= layer_fields for x in layers):
            raise PortingError(f"'{where}': metadata 'custom_head.layers' must be a list of head layers")
        size = raw.get("map_size")
        head = cls(**{**raw, "layers": tuple(HeadLayer(**x) for x in layers),
                      "map_size": tuple(size) if isinstance(size, list) else size})
        head.check(where)
        return head

    def check(self, where) -> None:
        def bad(why):
            raise PortingError(f"'{where}': head {why}")

        if self.pooling not in POOLINGS:
            bad(f"pooling '{self.pooling}' is not one of {', '.join(POOLINGS)}")
        if self.layout not in LAYOUTS:
            bad(f"layout '{self.layout}' is not one of {', '.join(LAYOUTS)}")
        if self.backbone_bn not in BACKBONE_BN:
            bad(f"backbone_bn '{self.backbone_bn}' is not one of {', '.join(BACKBONE_BN)}")
        if not (isinstance(self.features, int) and self.features >= 1):
            bad(f"features must be a positive whole number, not {self.features!r}")
        if self.pooling == "flatten" and not (isinstance(self.map_size, tuple) and len(self.map_size) == 2
                                              and all(isinstance(v, int) and v >= 1 for v in self.map_size)):
            bad("pooling 'flatten' needs the (h, w) of the map it flattens")
        if self.pooling == "none" and self.layers:
            bad("without pooling takes no layers (its output is the last feature map)")
        for i, layer in enumerate(self.layers):
            at = f"layer {i} ({layer.name or layer.kind})"
            if layer.kind not in KINDS:
                bad(f"{at}: kind '{layer.kind}' is not one of {', '.join(KINDS)}")
            if layer.kind == "dense" and not (isinstance(layer.units, int) and layer.units >= 1):
                bad(f"{at}: a dense layer needs units >= 1")
            if layer.kind == "activation" and layer.activation not in ACTIVATIONS:
                bad(f"{at}: activation '{layer.activation}' is not one of {', '.join(ACTIVATIONS)}")
            if layer.kind == "dense" and layer.activation and layer.activation not in ACTIVATIONS:
                bad(f"{at}: activation '{layer.activation}' is not one of {', '.join(ACTIVATIONS)}")
            if layer.kind == "dropout" and not 0 <= layer.rate < 1:
                bad(f"{at}: dropout rate must be in [0, 1), not {layer.rate!r}")
            if layer.kind == "batchnorm" and not (layer.eps > 0 and 0 <= layer.momentum <= 1):
                bad(f"{at}: batchnorm needs eps > 0 and momentum in [0, 1]")


# ------------------------------------------------------------------------------------------------- --head

HEAD_HELP = ("the head after the backbone, as the layers of its nn.Sequential in order: linear:N (linear:N:nobias), "
             "bn, relu, relu6, gelu, silu, sigmoid, tanh, softmax, leaky_relu[:A], elu[:A], dropout:P; first "
             "pool:avg|max (default avg); 'none' for no head (a feature extractor)")


def parse_head(text: str, features: int, *, prefix: str = "", layout: str = "module") -> Head:
    """`--head` -> a Head over `features` channels. Layers are named `{prefix}.{index}` (prefix: the source's
    classifier attribute, 'fc'), the index counting every layer as nn.Sequential does (fc.0, fc.1, ...)."""
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not tokens:
        raise PortingError(f"--head '{text}' is empty: {HEAD_HELP}")
    pooling = "avg"
    if tokens[0].lower().startswith("pool:"):
        pooling = tokens.pop(0).split(":", 1)[1].strip().lower()
        if pooling not in ("avg", "max"):
            raise PortingError(f"--head: pool:{pooling} is not avg or max")
    if [t.lower() for t in tokens] == ["none"]:
        return Head(pooling=pooling, features=features, layout=layout)
    layers = []
    for index, token in enumerate(tokens):
        name = f"{prefix}.{index}" if prefix else str(index)
        word, *args = [part.strip() for part in token.split(":")]
        word = word.lower()
        try:
            if word in ("linear", "dense", "fc"):
                if not args or len(args) > 2 or (len(args) == 2 and args[1].lower() != "nobias"):
                    raise ValueError
                layers.append(HeadLayer("dense", name, units=int(args[0]), bias=len(args) == 1))
            elif word in ("bn", "batchnorm", "batchnorm1d"):
                layers.append(HeadLayer("batchnorm", name, eps=float(args[0]) if args else 1e-5))
            elif word == "dropout":
                layers.append(HeadLayer("dropout", name, rate=float(args[0]) if args else 0.5))
            else:
                activation = ACTIVATION_ALIASES.get(word, word)
                if activation not in ACTIVATIONS or len(args) > (1 if activation in DEFAULT_ALPHA else 0):
                    raise ValueError
                alpha = float(args[0]) if args else DEFAULT_ALPHA.get(activation, 0.0)
                layers.append(HeadLayer("activation", name, activation=activation, alpha=alpha))
        except ValueError:
            raise PortingError(f"--head: cannot read '{token}': {HEAD_HELP}") from None
    head = Head(pooling=pooling, layers=tuple(layers), features=features, layout=layout)
    head.check("--head")
    return head


def spelled(head: Head) -> str:
    """The --head text for `head` (what an error suggests, and what `porting map` shows)."""
    words = [] if head.pooling == "avg" else [f"pool:{head.pooling}"]
    for layer in head.layers:
        if layer.kind == "dense":
            words.append(f"linear:{layer.units}" + ("" if layer.bias else ":nobias"))
            if layer.activation:
                words.append(layer.activation)
        elif layer.kind == "batchnorm":
            words.append("bn" if layer.eps == 1e-5 else f"bn:{layer.eps:g}")
        elif layer.kind == "dropout":
            words.append(f"dropout:{layer.rate:g}")
        else:
            default = DEFAULT_ALPHA.get(layer.activation)
            words.append(layer.activation + (f":{layer.alpha:g}" if default is not None and layer.alpha != default
                                             else ""))
    return ",".join(words) or "none"
