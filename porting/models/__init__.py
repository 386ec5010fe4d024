"""MindSpore architectures, by id. A checkpoint records its arch id and variant config; `build` rebuilds it."""
from __future__ import annotations

import dataclasses
import importlib

from porting.errors import PortingError

# arch id -> (module, model class, config class)
ARCHS = {
    "xception": ("porting.models.xception", "Xception", "XceptionConfig"),
    "xception_ppcls": ("porting.models.xception_ppcls", "XceptionPP", "XceptionPPConfig"),
    "xception_aligned": ("porting.models.xception_aligned", "XceptionAligned", "XceptionAlignedConfig"),
    "se_resnext": ("porting.models.se_resnext", "SEResNeXt", "SEResNeXtConfig"),
    "inception_v4": ("porting.models.inception_v4", "InceptionV4", "InceptionV4Config"),
}

# The smallest input each architecture computes (InceptionV4's unpadded stem and reductions need 75 px);
# below 32 px no ImageNet classifier here means anything, so that is the floor for the others.
MIN_INPUT_SIZE = {"inception_v4": 75}
MIN_SIZE_FLOOR, MAX_INPUT_SIZE = 32, 2048


def check_input_size(arch: str, size: int, extra_min: int = 0, what: str = "--size") -> int:
    lowest = max(MIN_INPUT_SIZE.get(arch, MIN_SIZE_FLOOR), extra_min)
    if not lowest <= size <= MAX_INPUT_SIZE:
        raise PortingError(f"{what} {size} is out of range for {arch}: use {lowest} to {MAX_INPUT_SIZE}")
    return size


def config_for(arch: str, config: dict):
    """The architecture's config object for `config`; unknown archs or keys are a one-line error."""
    if arch not in ARCHS:
        raise PortingError(f"unknown architecture '{arch}'; known: {', '.join(sorted(ARCHS))}")
    module, _, config_cls = ARCHS[arch]
    cls = getattr(importlib.import_module(module), config_cls)
    if not isinstance(config, dict):
        raise PortingError(f"the {arch} config must be a mapping, not {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise PortingError(f"unknown {arch} config key(s) {', '.join(map(repr, unknown))}; known: "
                           f"{', '.join(sorted(known))}")
    return cls(**config)


def build(arch: str, config: dict, num_classes: int):
    """A MindSpore model in inference mode."""
    cfg = config_for(arch, config)
    module, model_cls, _ = ARCHS[arch]
    net = getattr(importlib.import_module(module), model_cls)(num_classes, cfg)
    net.set_train(False)
    return net
