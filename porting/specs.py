"""SOURCE:MODEL specs: what a name like `timm:xception` means, and how names resolve. No framework imported.

A spec says which source library builds the model, which MindSpore architecture (and which variant of it)
reproduces it, where its weight map lives, and the preprocessing the source defines. Specs are registered by
their architecture's package (porting/archs/<arch>/__init__.py); `all_specs()` lists them.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace

from porting.errors import PortingError


@dataclass(frozen=True)
class ModelSpec:
    source: str  # 'timm' | 'keras' | 'paddleclas' | 'mindcv' | 'modelzoo'
    name: str  # the source library's own model name
    arch: str  # MindSpore architecture id (porting.archs registry)
    arch_config: dict = field(default_factory=dict)
    weight_map: str = ""  # module in the architecture's package with build(spec) -> WeightMap ('from_timm')
    aliases: tuple[str, ...] = ()
    head: str = "fc"  # the MindSpore Dense cell that --num-classes re-initialises
    num_classes: int = 1000
    input_size: int = 299
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # options for seeded synthetic source weights (the runners' randomize), e.g. {"bn_beta_mean": 1.0}
    random_init: dict = field(default_factory=dict)
    source_min_size: int = 0  # the source library's own smallest input, where it has one (Keras Xception: 71)
    source_max_size: int = 0  # ... and largest (the model zoo's Xception: its AvgPool2d(10) needs 10x10 maps)
    # timm's pretrained tag ('tf_in1k' in timm:xception65.tf_in1k): picks the download and the preprocessing
    tag: str = ""
    hub: str = ""  # a Hugging Face Hub repo ('timm/xception41.tf_in1k') when named as hf-hub:REPO
    resize_backend: str = ""  # how the source resizes (porting.training.data.RESIZE_BACKENDS); "": the source's
    # where the source's code is, for a source that is a code checkout (the model zoo: porting.modelzoo); set per
    # run (--modelzoo DIR), like `hub`
    checkout: str = ""
    variant: str = ""  # how this variant computes, for the README table and `porting models`
    notes: str = ""  # where the source model lives and what the map does beyond renaming

    @property
    def id(self) -> str:
        return f"{self.source}:{self.source_name}"

    @property
    def source_name(self) -> str:
        """The name the source library is asked for: timm's 'model.tag' when a tag is named."""
        return f"{self.name}.{self.tag}" if self.tag else self.name

    def check_size(self, size: int, what: str = "--size") -> int:
        from porting.archs import check_input_size

        return check_input_size(self.arch, size, self.source_min_size, what, self.source_max_size)

    def build_weight_map(self):
        from porting.archs import get_arch

        return importlib.import_module(f"{get_arch(self.arch).package}.{self.weight_map}").build(self)

    def preprocessing(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct,
                "resize_backend": self.resize_backend or RESIZE_BACKEND[self.source]}


def all_specs() -> list[ModelSpec]:
    from porting.archs import SPECS

    return list(SPECS)


def __getattr__(name: str):
    if name == "SPECS":  # the registry's list, filled when porting.archs is imported
        return all_specs()
    raise AttributeError(f"module 'porting.specs' has no attribute '{name}'")


def resolve(text: str) -> ModelSpec:
    """'timm:xception' -> the legacy_xception spec. Case-insensitive; unknown names list the supported ones.

    timm names may carry timm's pretrained tag (`timm:xception65.tf_in1k`), and `hf-hub:timm/MODEL.TAG` names
    the same model on the Hugging Face Hub; timm checks the tag when the worker builds the model.
    """
    if text.strip().lower().startswith("hf-hub:"):
        repo = text.strip()[len("hf-hub:"):]
        org, _, model = repo.partition("/")
        if org != "timm" or not model:
            raise PortingError(f"'{text}': porting knows timm's own Hub repos (hf-hub:timm/MODEL.TAG); for another "
                               f"repo, download its weights and pass them with --weights to the matching spec")
        return replace(resolve(f"timm:{model}"), hub=repo)
    source, sep, name = text.partition(":")
    if not sep or not source or not name:
        raise PortingError(f"model spec '{text}' must look like SOURCE:MODEL, e.g. timm:xception")
    key_source, key_name = source.strip().lower(), name.strip().lower()
    specs = all_specs()
    sources = sorted({s.source for s in specs})
    matches = [s for s in specs if s.source == key_source]
    if not matches:
        raise PortingError(f"unknown source '{source}' in '{text}'; supported sources: {', '.join(sources)}")
    for spec in matches:
        if key_name == spec.name.lower() or key_name in (a.lower() for a in spec.aliases):
            return spec
    base, dot, tag = key_name.partition(".")
    if dot and key_source == "timm" and tag:
        for spec in matches:
            if base == spec.name.lower() or base in (a.lower() for a in spec.aliases):
                return replace(spec, tag=tag)
    names = ", ".join(s.id + (f" (alias {', '.join(s.aliases)})" if s.aliases else "") for s in matches)
    # a model that other sources have but this library does not ship (keras:inception_v4, keras:seresnext50_32x4d)
    elsewhere = [s.id for s in specs if s.source != key_source
                 and _bare(key_name) in {_bare(s.name), *map(_bare, s.aliases)}]
    if elsewhere:
        raise PortingError(f"{LIBRARIES.get(key_source, key_source)} ships no {name.strip()} model; "
                           f"{key_source} offers: {names}; {name.strip()} is available as {', '.join(elsewhere)}")
    raise PortingError(f"unknown model '{name}' for source {key_source}; supported: {names}")


LIBRARIES = {"timm": "timm", "keras": "Keras (keras.applications)", "paddleclas": "PaddleClas", "mindcv": "mindcv",
             "modelzoo": "the MindSpore model zoo"}
# how each library resizes images: timm (torchvision) and Keras on PIL images, PaddleClas with cv2.resize,
# mindcv with mindspore.dataset's (OpenCV) Resize, the model zoo with MindSpore's Resize and CenterCrop
RESIZE_BACKEND = {"timm": "pil", "keras": "pil", "paddleclas": "opencv", "mindcv": "opencv", "modelzoo": "mindspore"}


def _bare(name: str) -> str:
    """'InceptionV4', 'inception_v4' and 'inception-v4' are the same model name."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def preprocessing_text(spec: ModelSpec) -> str:
    if spec.mean == spec.std == (0.5, 0.5, 0.5):
        norm = "mean = std 0.5"
    elif (spec.mean, spec.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)):
        norm = "ImageNet mean/std"
    else:
        norm = f"mean {list(spec.mean)}, std {list(spec.std)}"
    resize = spec.input_size / spec.crop_pct
    square = f"x{round(resize)}" if spec.resize_backend == "mindspore-square" else ""
    crop = (f"resize {round(resize)}{square} -> crop {spec.input_size}" if abs(resize - round(resize)) < 1e-6
            else f"crop {spec.crop_pct:.4g}")
    return f"{spec.input_size} ({norm}, {spec.interpolation}, {crop})"


def readme_table() -> str:
    """The README's "Supported models" table, generated from the registry (a test keeps the README in step)."""
    lines = ["| spec | MindSpore architecture | input | notes |", "|---|---|---|---|"]
    for spec in all_specs():
        aliases = ", ".join(f"`{spec.source}:{a}`" for a in spec.aliases)
        lines.append(f"| `{spec.id}`{f' (alias {aliases})' if aliases else ''} | `{spec.arch}` ({spec.variant}) | "
                     f"{preprocessing_text(spec)} | {spec.notes} |")
    return "\n".join(lines)
