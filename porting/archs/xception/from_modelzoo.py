"""The model zoo's Xception (official/cv/Inception/xception/src/Xception.py) -> the Xception model.

The model zoo's network is the Cadene / timm legacy_xception module for module: `conv1`/`bn1`, `block{n}.rep.{i}`
with the same [ReLU, SeparableConv2d (`conv1` depthwise, `pointwise`), BN] order (block1 without its first ReLU),
`block{n}.skip`/`skipbn`, `conv3`/`conv4` separable, `fc`. So its table is timm's under the same names, BN tensors
under MindSpore's.
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception import from_timm
from porting.weight_maps import WeightMap, renamed_source


def build(spec, convention) -> WeightMap:
    return renamed_source(from_timm.build(spec, convention), spec.id, lambda path: path)


register_specs(
    # the model zoo's src/Xception.py (seed 000): mindcv's graph (mindcv's xception came from it), with the global
    # mean written as AvgPool2d(10), which is the global mean only where the last maps are 10x10: inputs of 295 to
    # 326 px. Eval as its src/dataset.py: Resize(320) (short side, bilinear) -> CenterCrop(299), mean = std 127.5.
    ModelSpec("modelzoo", "xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": "same"},
              weight_map="from_modelzoo", interpolation="bilinear", crop_pct=299 / 320, source_min_size=295,
              source_max_size=326,
              variant="a configuration, `mindcv:xception`'s; its AvgPool2d(10) head is the global mean at 295-326 px (299)",
              notes="the model zoo's official/cv/Inception/xception (seed 000), run from your checkout (--modelzoo); "
                    "a `.ckpt` its train.py saved"),
)
