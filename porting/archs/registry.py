"""The registry: MindSpore architectures and the SOURCE:MODEL specs that map onto them. No framework here.

Each architecture package registers its config class with `@register_arch` (as timm's `@register_model`) and its
specs with `register_specs`; `porting.archs` imports every package, so importing it fills both tables.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

from porting.errors import PortingError

# below 32 px no ImageNet classifier here means anything; an architecture may need more (Inception-v4: 75)
MIN_SIZE_FLOOR, MAX_INPUT_SIZE = 32, 2048


@dataclass(frozen=True)
class Arch:
    name: str  # the id a checkpoint records ('xception_aligned')
    config: type  # the variant config dataclass (framework-free, in the package's __init__)
    model: str  # 'module:Class' of the MindSpore model, imported only when a network is built
    recipe: str  # the model-zoo fine-tuning recipe it gets by default (porting.training.recipes)
    min_input_size: int = MIN_SIZE_FLOOR  # the smallest input its unpadded stem / reductions compute

    @property
    def package(self) -> str:
        return self.config.__module__


ARCHS: dict[str, Arch] = {}
SPECS: list = []  # porting.specs.ModelSpec, in registration order (the order `porting models` lists)


def register_arch(name: str, *, model: str, recipe: str, min_input_size: int = MIN_SIZE_FLOOR):
    """Class decorator on an architecture's config dataclass."""
    def register(config: type) -> type:
        if name in ARCHS:
            raise ValueError(f"architecture '{name}' registered twice")
        ARCHS[name] = Arch(name, config, model, recipe, min_input_size)
        return config
    return register


def register_specs(*specs) -> None:
    for spec in specs:
        if spec.arch not in ARCHS:
            raise ValueError(f"{spec.id}: architecture '{spec.arch}' is not registered")
        if any(s.id == spec.id for s in SPECS):
            raise ValueError(f"{spec.id} registered twice")
        SPECS.append(spec)


def get_arch(arch: str) -> Arch:
    if arch not in ARCHS:
        raise PortingError(f"unknown architecture '{arch}'; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch]


def check_input_size(arch: str, size: int, extra_min: int = 0, what: str = "--size", extra_max: int = 0) -> int:
    lowest, highest = max(get_arch(arch).min_input_size, extra_min), extra_max or MAX_INPUT_SIZE
    if not lowest <= size <= highest:
        raise PortingError(f"{what} {size} is out of range for {arch}: use {lowest} to {highest}")
    return size


def config_for(arch: str, config: dict):
    """The architecture's config object for `config`; unknown archs or keys are a one-line error."""
    cls = get_arch(arch).config
    if not isinstance(config, dict):
        raise PortingError(f"the {arch} config must be a mapping, not {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise PortingError(f"unknown {arch} config key(s) {', '.join(map(repr, unknown))}; known: "
                           f"{', '.join(sorted(known))}")
    return cls(**config)


def build(arch: str, config: dict, num_classes: int):
    """The MindSpore model in inference mode (imports MindSpore)."""
    cfg = config_for(arch, config)
    module, _, cls = get_arch(arch).model.partition(":")
    net = getattr(importlib.import_module(module), cls)(num_classes, cfg)
    net.set_train(False)
    net.built_as = (arch, cfg, num_classes)  # what checkpoint.load_model(into=net) checks a checkpoint against
    return net
