"""mindcv `xception` (mindcv/models/xception.py) -> the Xception model.

mindcv re-implements timm's legacy_xception (its docs say so) with the same module names except the block list
and the head, so its table is timm's, renamed: `block1..block12` -> `blocks.0..11`, `fc` -> `classifier`, BN
tensors under MindSpore's names.
"""
import re

from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception import from_timm
from porting.weight_maps import WeightMap, renamed_source


def rename(path: str) -> str:
    path = re.sub(r"^block(\d+)", lambda m: f"blocks.{int(m.group(1)) - 1}", path)
    return "classifier" if path == "fc" else path


def build(spec, convention) -> WeightMap:
    return renamed_source(from_timm.build(spec, convention), spec.id, rename)


register_specs(
    # mindcv/models/xception.py: timm's graph with 'same' max pools, BNs at MindSpore's eps 1e-5; eval
    # preprocessing as mindcv's create_transforms: resize the short side to size / 0.875 (bilinear, OpenCV in
    # mindspore.dataset) -> centre crop, ImageNet mean/std.
    ModelSpec("mindcv", "xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": "same"},
              weight_map="from_mindcv", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
              interpolation="bilinear", crop_pct=0.875,
              variant="BN eps 1e-5, symmetric conv padding, max pools 'same' as mindcv's",
              notes="mindcv/models/xception.py; a MindSpore `.ckpt` (see \"Checkpoints you already have in "
                    "MindSpore\")"),
)
