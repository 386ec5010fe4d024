"""The registry of supported SOURCE:MODEL pairs. Importing this module imports no framework.

A spec says which source library builds the model, which MindSpore architecture (and which variant of it)
reproduces it, where its weight map lives, and the preprocessing the source defines.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from porting.errors import PortingError


@dataclass(frozen=True)
class ModelSpec:
    source: str  # 'timm' | 'keras' | 'paddleclas'
    name: str  # the source library's own model name
    arch: str  # MindSpore architecture id in porting.models
    arch_config: dict = field(default_factory=dict)
    weight_map: str = ""  # module under porting.weight_maps with build(spec) -> WeightMap
    aliases: tuple[str, ...] = ()
    head: str = "fc"  # the MindSpore Dense cell that --num-classes re-initialises
    num_classes: int = 1000
    input_size: int = 299
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875

    @property
    def id(self) -> str:
        return f"{self.source}:{self.name}"

    def build_weight_map(self):
        return importlib.import_module(f"porting.weight_maps.{self.weight_map}").build(self)

    def preprocessing(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct}


SPECS: list[ModelSpec] = [
    ModelSpec("timm", "legacy_xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1},
              weight_map="timm_xception", aliases=("xception",), crop_pct=0.8975),
]


def all_specs() -> list[ModelSpec]:
    return list(SPECS)


def resolve(text: str) -> ModelSpec:
    """'timm:xception' -> the legacy_xception spec. Case-insensitive; unknown names list the supported ones."""
    source, sep, name = text.partition(":")
    if not sep or not source or not name:
        raise PortingError(f"model spec '{text}' must look like SOURCE:MODEL, e.g. timm:xception")
    key_source, key_name = source.strip().lower(), name.strip().lower()
    sources = sorted({s.source for s in SPECS})
    matches = [s for s in SPECS if s.source == key_source]
    if not matches:
        raise PortingError(f"unknown source '{source}' in '{text}'; supported sources: {', '.join(sources)}")
    for spec in matches:
        if key_name == spec.name.lower() or key_name in (a.lower() for a in spec.aliases):
            return spec
    names = ", ".join(s.id + (f" (alias {', '.join(s.aliases)})" if s.aliases else "") for s in matches)
    raise PortingError(f"unknown model '{name}' for source {key_source}; supported: {names}")
