"""mindcv `seresnext50_32x4d` (mindcv/models/senet.py) -> the SEResNeXt model.

mindcv re-implements timm's legacy_seresnext50_32x4d (the Cadene names), so its table is timm's legacy one,
renamed: the stem is a Sequential (`layer0.0`, `layer0.1`), the SE's Dense layers are `conv_reduce` /
`conv_expand`, the head `classifier`; BN tensors under MindSpore's names.
"""
from dataclasses import replace

from porting.archs.registry import ModelSpec, register_specs
from porting.archs.se_resnext import IMAGENET_224, from_timm, timm_graph
from porting.weight_maps import WeightMap, renamed_source

STEM_AND_HEAD = {"layer0.conv1": "layer0.0", "layer0.bn1": "layer0.1", "last_linear": "classifier"}


def rename(path: str) -> str:
    path = STEM_AND_HEAD.get(path, path)
    return path.replace("se_module.fc1", "se_module.conv_reduce").replace("se_module.fc2", "se_module.conv_expand")


def build(spec, convention) -> WeightMap:
    legacy = replace(spec, source="timm", name=from_timm.LEGACY)
    return renamed_source(from_timm.build(legacy, convention), spec.id, rename)


register_specs(
    # mindcv senet.py: the Cadene model with its stem pool 'same' and the SE in Dense layers; eval as mindcv's
    # create_transforms (resize short side to size / 0.875, bilinear, OpenCV -> centre crop).
    ModelSpec("mindcv", "seresnext50_32x4d", "se_resnext", timm_graph(stem_pool_padding="same", se_dense=True),
              weight_map="from_mindcv", **IMAGENET_224, interpolation="bilinear", crop_pct=0.875,
              variant="stem pool 'same', SE with Dense layers", notes="mindcv/models/senet.py"),
)
