"""The model card: what a ported model is, how to feed it and where it comes from, in one typed record.

Every file porting writes carries one (the .ckpt's `porting_metadata` JSON, ONNX `metadata_props`, MINDIR
`user_info`), and every module reads it through this class: `ModelCard.from_dict` checks it once, so a
command meets a typed, valid card or a one-line error naming the file, never a KeyError later. No framework
here (arch_config is checked against the architecture's registered config class).
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
    train_state: dict | None = None  # a fine-tuning checkpoint's step, epoch, recipe
    export: dict | None = None  # how an ONNX / MINDIR was exported (opset, batch, size, precision...)
    format: str = FORMAT

    def replace(self, **changes) -> ModelCard:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------------------------- reading and writing

    def to_dict(self) -> dict:
        """The card as JSON-ready data; fields that are unset (None) are left out."""
        raw = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.custom_head is not None:
            raw["custom_head"] = self.custom_head.to_dict()
        return raw

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
        if raw.get("custom_head") is not None:
            raw = {**raw, "custom_head": Head.from_dict(raw["custom_head"], where)}
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
        for key in ("background_class", "nonfinite_values", "train_state", "export", "arch_config"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), dict):
                bad(key, "must be a JSON object")

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
    def export_options(self) -> dict:
        return dict(self.export or {})
