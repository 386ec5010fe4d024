"""mindcv `xception` (mindcv/models/xception.py) -> the Xception model.

mindcv re-implements timm's legacy_xception (its docs say so) with the same module names except the block list
and the head, so its table is timm's, renamed: `block1..block12` -> `blocks.0..11`, `fc` -> `classifier`, BN
tensors under MindSpore's names.
"""
import re

from porting.archs.xception import from_timm
from porting.weight_maps import WeightMap, renamed_source


def rename(path: str) -> str:
    path = re.sub(r"^block(\d+)", lambda m: f"blocks.{int(m.group(1)) - 1}", path)
    return "classifier" if path == "fc" else path


def build(spec, convention) -> WeightMap:
    return renamed_source(from_timm.build(spec, convention), spec.id, rename)
