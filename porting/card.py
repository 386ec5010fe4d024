"""The model card: what a ported model is, how to feed it and where it comes from, in one typed record.

Every file porting writes carries one (the .ckpt's `porting_metadata` JSON, ONNX `metadata_props`, MINDIR
`user_info`), and every module reads it through this class: `ModelCard.from_dict` checks it once, so a
command meets a typed, valid card or a one-line error naming the file, never a KeyError later. Its nested
parts are typed too (a fine-tuning checkpoint's TrainState, an export's ExportInfo; arch_config is read through
the architecture's config class: `card.config`), in the same JSON as before. No framework here.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from porting.errors import PortingError
from porting.heads import Head

FORMAT = "porting-ckpt/2"
META_KEY = "porting_metadata"  # the .ckpt entry that holds the card as JSON (porting.checkpoint)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
# how images are resized (porting.images.preprocessing.Preprocessing): PIL's filters (timm, Keras), OpenCV's
# arithmetic (PaddleClas, mindcv), the model zoo's MindSpore Resize (short side) or Resize((R, R)) ('-square')
RESIZE_BACKENDS = ("pil", "opencv", "mindspore", "mindspore-square")


def _bad(where, key: str, why: str) -> PortingError:
    return PortingError(f"'{where}': metadata '{key}' {why}")


# The JSON values a field of the card's nested parts takes, by its annotation (a string here: annotations are
# postponed), and how an error names them
JSON_TYPES = {"int": ((int,), "a whole number"), "float": ((int, float), "a number"),
              "bool": ((bool,), "true or false"), "str": ((str,), "a string"), "dict": ((dict,), "a JSON object"),
              "list[float]": ((list,), "a list"), "Quantization": ((dict,), "a JSON object")}


def _typed(cls, raw, where, key: str):
    """`raw` (a JSON object) as the dataclass `cls`, each value it gives of its field's type (None only where the
    field takes None); or one line naming the file and the field."""
    if not isinstance(raw, dict):
        raise _bad(where, key, "must be a JSON object")
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise _bad(where, key, f"has unknown field(s) {', '.join(map(repr, unknown))} (written by a newer porting?)")
    for name, value in raw.items():
        optional = fields[name].endswith(" | None")
        types, words = JSON_TYPES[fields[name].removesuffix(" | None")]
        if value is None and optional:
            continue
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise _bad(where, f"{key}.{name}", f"must be {words}{' or null' if optional else ''}, not {value!r}")
    return cls(**raw)


@dataclass(frozen=True)
class TrainState:
    """What a fine-tuning checkpoint adds (porting.training.finetune): where the run stood, what it trained with,
    and the divergence stop's state, so that --resume continues the very run."""

    global_step: int = 0
    steps_per_epoch: int | None = None
    epochs: int | None = None
    world_size: int = 1
    loss: float | None = None  # the last step's
    recipe: dict = field(default_factory=dict)  # porting.training.recipes.as_dict of the recipe it trained with
    settings: dict = field(default_factory=dict)  # what a resumed run must share with it, compared key by key
    start_loss: float | None = None  # the divergence stop's reference ...
    recent_losses: list[float] = field(default_factory=list)  # ... and its window

    @property
    def workers(self) -> int | None:
        """The dataset workers it trained with (its random crops depend on their number); None where unrecorded."""
        return self.settings.get("workers")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw, where: str | Path) -> TrainState:
        return _typed(cls, raw, where, "train_state")


@dataclass(frozen=True)
class Quantization:
    """How `porting quantize` made an int8 file (ONNX Runtime's static quantization)."""

    format: str | None = None  # QDQ
    per_channel: bool | None = None
    weights: str | None = None  # int8
    activations: str | None = None
    calibration: str | None = None  # minmax | percentile | entropy
    calibration_images: int | None = None
    classes_covered: int | None = None


@dataclass(frozen=True)
class ExportInfo:
    """How an ONNX or MINDIR file was exported: what a runtime needs to feed it (a fixed batch and size) and what
    it computes in."""

    opset: int | None = None  # ONNX
    batch: int | None = None  # None: a dynamic batch (ONNX); a MINDIR's is fixed
    size: int | None = None  # a MINDIR's fixed input size (an ONNX's is in its input)
    dynamic_size: bool | None = None
    precision: str | None = None  # float32 | float16 (export --fp16) | int8 (porting quantize)
    fold_bn: bool | None = None
    quantization: Quantization | None = None

    def to_dict(self) -> dict:
        """Fields that do not apply (None) left out, but the batch: null says it is dynamic."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k == "batch"}

    @classmethod
    def from_dict(cls, raw, where: str | Path) -> ExportInfo:
        info = _typed(cls, raw, where, "export")
        if info.quantization is not None:
            info = dataclasses.replace(info, quantization=_typed(Quantization, info.quantization, where,
                                                                 "export.quantization"))
        return info


@dataclass(frozen=True)
class ModelCard:
    # what the model is
    arch: str  # porting's architecture id (porting.archs)
    arch_config: dict  # its variant config
    num_classes: int
    head: str = "fc"  # the classifier cell --num-classes replaces
    # the user's own head (pooling, dense / BN / activation / dropout layers), or a feature extractor's (no dense:
    # num_classes 0); None: the library's standard head
    custom_head: Head | None = None
    class_names: list[str] | None = None  # after fine-tuning (folder names), or ImageNet's in an export
    background_class: dict | None = None  # {"index": 0, "kept": bool}: a TF-slim 1001-class source head
    # how to feed it
    input_size: int = 299
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    resize_backend: str = "opencv"  # RESIZE_BACKENDS
    test_input_size: int | None = None  # timm evaluates some weights at a larger size ...
    test_crop_pct: float | None = None  # ... with another crop
    # where it comes from
    source: str = ""  # the spec it was ported from ('timm:xception65.tf_in1k')
    source_num_classes: int | None = None
    pretrained_tag: str = ""
    weights: str = ""  # 'file:NAME', 'random-init:SEED' or 'pretrained:TAG'
    source_sha256: str | None = None  # of the weights file
    head_reinitialized: bool = False  # the head was drawn anew: fine-tune before use
    finetuned_from: str | None = None
    nonfinite_values: dict | None = None  # {tensor: NaN/Inf count}, ported with --allow-nonfinite
    tool_version: str = ""
    created: str = ""
    # what a file adds
    train_state: TrainState | None = None  # a fine-tuning checkpoint's step, epoch, recipe
    export: ExportInfo | None = None  # how an ONNX / MINDIR was exported (opset, batch, size, precision...)
    format: str = FORMAT

    def replace(self, **changes) -> ModelCard:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------------------------- reading and writing

    def to_dict(self) -> dict:
        """The card as JSON-ready data; fields that are unset (None) are left out."""
        # each nested record writes its own (the user's head: Head.to_dict)
        nested = {"train_state": self.train_state, "export": self.export, "custom_head": self.custom_head}
        out = {k: v for k, v in dataclasses.asdict(dataclasses.replace(self, **dict.fromkeys(nested))).items()
               if v is not None}
        out.update({k: v.to_dict() for k, v in nested.items() if v is not None})
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_props(self) -> dict[str, str]:
        """String properties (ONNX metadata_props, MINDIR user_info): strings as they are, the rest as JSON."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_json(cls, text: str, where: str | Path) -> ModelCard:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise PortingError(f"'{where}': its metadata is not valid JSON ({exc})") from None
        return cls.from_dict(raw, where)

    @classmethod
    def from_props(cls, props: dict[str, str], where: str | Path) -> ModelCard:
        """The card of an exported file; one without porting's properties is refused in one line."""
        if "arch" not in props or "mean" not in props:
            raise PortingError(f"'{where}' carries no porting metadata (not written by `porting export`?): its "
                               f"preprocessing is unknown")
        raw = {}
        for key, value in props.items():
            try:
                raw[key] = json.loads(value)
            except ValueError:
                raw[key] = value  # plain strings (source, arch, ...) are stored as they are
        return cls.from_dict(raw, where)

    @classmethod
    def from_dict(cls, raw, where: str | Path) -> ModelCard:
        """A valid card from `raw`, or one line naming `where` and the field at fault."""
        if not isinstance(raw, dict):
            raise PortingError(f"'{where}': metadata is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PortingError(f"'{where}': metadata has unknown field(s) {', '.join(map(repr, unknown))} "
                               f"(written by a newer porting?)")
        if raw.get("format") != FORMAT:
            raise PortingError(f"'{where}': metadata 'format' is {raw.get('format')!r}, this porting reads "
                               f"{FORMAT!r}")
        for key in ("arch", "arch_config", "num_classes", "input_size", "mean", "std"):
            if key not in raw:
                raise PortingError(f"'{where}': metadata '{key}' is missing")
        raw = dict(raw)
        if raw.get("train_state") is not None:
            raw["train_state"] = TrainState.from_dict(raw["train_state"], where)
        if raw.get("export") is not None:
            raw["export"] = ExportInfo.from_dict(raw["export"], where)
        if raw.get("custom_head") is not None:
            raw["custom_head"] = Head.from_dict(raw["custom_head"], where)
        card = cls(**raw)
        card.check(where)
        return card

    # --------------------------------------------------------------------------------- validation

    def check(self, where: str | Path) -> None:
        """What every command relies on, checked once."""
        from porting import archs

        def bad(key, why):
            raise PortingError(f"'{where}': metadata '{key}' {why}")

        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        def fraction(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1

        if not isinstance(self.arch, str):
            bad("arch", f"must be an architecture name, not {self.arch!r}")
        archs.config_for(self.arch, self.arch_config)
        for key in ("num_classes", "input_size"):
            if not whole(getattr(self, key)) and not (key == "num_classes" and self.headless
                                                      and self.num_classes == 0):
                bad(key, f"must be a positive whole number, not {getattr(self, key)!r}"
                    + (" (0 only for a feature extractor: a custom_head without a dense layer)"
                       if getattr(self, key) == 0 else ""))
        head = self.custom_head
        if head is not None and not isinstance(head, Head):
            bad("custom_head", "must be a head record")
        if head is not None and head.num_classes != self.num_classes:
            bad("num_classes", f"is {self.num_classes}, but its custom_head's last dense layer gives "
                               f"{head.num_classes}")
        if self.test_input_size is not None and not whole(self.test_input_size):
            bad("test_input_size", f"must be a positive whole number, not {self.test_input_size!r}")
        for key in ("mean", "std"):
            v = getattr(self, key)
            if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
                bad(key, f"must be 3 numbers, not {v!r}")
        if not all(s > 0 for s in self.std):
            bad("std", f"must be positive, not {self.std!r}")
        if not fraction(self.crop_pct):
            bad("crop_pct", f"must be in (0, 1], not {self.crop_pct!r}")
        if self.test_crop_pct is not None and not fraction(self.test_crop_pct):
            bad("test_crop_pct", f"must be in (0, 1], not {self.test_crop_pct!r}")
        if self.interpolation not in INTERPOLATIONS:
            bad("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if self.resize_backend not in RESIZE_BACKENDS:
            bad("resize_backend", f"must be one of {', '.join(RESIZE_BACKENDS)}, not {self.resize_backend!r}")
        names = self.class_names
        if names is not None and not (isinstance(names, list) and len(names) == self.num_classes
                                      and all(isinstance(n, str) for n in names)):
            bad("class_names", f"must list {self.num_classes} names")
        if not isinstance(self.head, str):
            bad("head", "must be a cell name")
        for key in ("background_class", "nonfinite_values", "arch_config"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), dict):
                bad(key, "must be a JSON object")
        for key, cls in (("train_state", TrainState), ("export", ExportInfo)):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), cls):
                bad(key, f"must be a {cls.__name__}")

    # --------------------------------------------------------------------------------- what it says

    @property
    def background_kept(self) -> bool:
        """A TF-slim background class is output 0 (ImageNet label L is output L + 1)."""
        return bool((self.background_class or {}).get("kept"))

    @property
    def background_dropped(self) -> bool:
        """The source's 1001-class head lost its background row in the port."""
        return self.background_class == {"index": 0, "kept": False}

    @property
    def headless(self) -> bool:
        """A feature extractor: no classifier (its output is named 'features', it has no classes)."""
        return self.custom_head is not None and self.custom_head.headless

    @property
    def output(self) -> str:
        """What the model outputs: 'logits', 'probabilities' (a softmax ends its head) or 'features' (no
        classifier)."""
        if self.headless:
            return "features"
        for layer in reversed(self.custom_head.layers if self.custom_head is not None else ()):
            if layer.kind != "dropout":
                return "probabilities" if layer.activation == "softmax" else "logits"
        return "logits"

    @property
    def fixed_size(self) -> int | None:
        """The one input size the model takes, where its head flattens a feature map of fixed size; else None."""
        head = self.custom_head
        return self.input_size if head is not None and head.pooling == "flatten" else None

    def check_size(self, size: int, what: str = "--size") -> int:
        """`size`, unless the model takes one input size only (fixed_size) and it is another: a one-line error."""
        if self.fixed_size and size != self.fixed_size:
            h, w = self.custom_head.map_size
            raise PortingError(f"{what} {size}: the model's head flattens its {h}x{w} feature map, so it takes "
                               f"{self.fixed_size} px inputs only")
        return size

    @property
    def export_info(self) -> ExportInfo:
        """How the file was exported (every field None for a checkpoint)."""
        return self.export or ExportInfo()

    @property
    def config(self):
        """The architecture's config object of arch_config (its class's defaults for keys it leaves out)."""
        from porting import archs

        return archs.config_for(self.arch, self.arch_config)
