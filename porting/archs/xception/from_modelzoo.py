"""The model zoo's Xception (official/cv/Inception/xception/src/Xception.py) -> the Xception model.

The model zoo's network is the Cadene / timm legacy_xception module for module: `conv1`/`bn1`, `block{n}.rep.{i}`
with the same [ReLU, SeparableConv2d (`conv1` depthwise, `pointwise`), BN] order (block1 without its first ReLU),
`block{n}.skip`/`skipbn`, `conv3`/`conv4` separable, `fc`. So its table is timm's under the same names, BN tensors
under MindSpore's.
"""
from porting.archs.xception import from_timm
from porting.weight_maps import WeightMap, renamed_source


def build(spec, convention) -> WeightMap:
    return renamed_source(from_timm.build(spec, convention), spec.id, lambda path: path)
