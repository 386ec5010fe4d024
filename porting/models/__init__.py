"""MindSpore architectures, by id. A checkpoint records its arch id and variant config; `build` rebuilds it."""
from __future__ import annotations

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


def build(arch: str, config: dict, num_classes: int):
    """A MindSpore model in inference mode."""
    if arch not in ARCHS:
        raise PortingError(f"unknown architecture '{arch}'; known: {', '.join(sorted(ARCHS))}")
    module, model_cls, config_cls = ARCHS[arch]
    mod = importlib.import_module(module)
    net = getattr(mod, model_cls)(num_classes, getattr(mod, config_cls)(**config))
    net.set_train(False)
    return net
