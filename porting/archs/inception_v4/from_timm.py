"""timm `inception_v4` (timm/models/inception_v4.py) -> the InceptionV4 model.

The MindSpore model keeps timm's cell names, so each ConvNormAct `features.N.<unit>` maps onto the
ConvBnAct of the same name: `.conv` -> `.conv`, `.bn` (BatchNormAct2d) -> `.bn`. timm's `.bn` output already
includes the ReLU, so parity compares it with the MindSpore ConvBnAct's `.act` cell.
"""
from porting.archs.inception_v4 import CONDITIONED, TIMM_GRAPH
from porting.archs.registry import ModelSpec, register_specs
from porting.weight_maps import WeightMap

# ConvBnAct units of each block, in timm's compute order; pools are (path, kind) taps without weights.
STEM = ["features.0", "features.1", "features.2"]
BLOCKS = {
    "mixed3a": (["maxpool"], ["conv"]),
    "mixed4a": ([], ["branch0.0", "branch0.1", "branch1.0", "branch1.1", "branch1.2", "branch1.3"]),
    "mixed5a": (["maxpool"], ["conv"]),
    "inception_a": (["branch3.0"], ["branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2",
                                    "branch3.1"]),
    "reduction_a": (["branch2"], ["branch0", "branch1.0", "branch1.1", "branch1.2"]),
    "inception_b": (["branch3.0"], ["branch0", "branch1.0", "branch1.1", "branch1.2", "branch2.0", "branch2.1",
                                    "branch2.2", "branch2.3", "branch2.4", "branch3.1"]),
    "reduction_b": (["branch2"], ["branch0.0", "branch0.1", "branch1.0", "branch1.1", "branch1.2", "branch1.3"]),
    "inception_c": (["branch3.0"], ["branch0", "branch1_0", "branch1_1a", "branch1_1b", "branch2_0", "branch2_1",
                                    "branch2_2", "branch2_3a", "branch2_3b", "branch3.1"]),
}
# features.3 .. features.21
LAYOUT = ["mixed3a", "mixed4a", "mixed5a", *["inception_a"] * 4, "reduction_a", *["inception_b"] * 7,
          "reduction_b", *["inception_c"] * 3]


def build(spec, convention) -> WeightMap:
    wm = convention.map("timm:inception_v4")
    for unit in STEM:
        wm.conv_bn(unit, unit, act=True)
    for i, kind in enumerate(LAYOUT, 3):
        pools, units = BLOCKS[kind]
        for pool in pools:
            wm.layer(f"features.{i}.{pool}", f"features.{i}.{pool}", "pool")
        for unit in units:
            wm.conv_bn(f"features.{i}.{unit}", f"features.{i}.{unit}", act=True)
        wm.layer(f"features.{i}", f"features.{i}", "block")
    wm.dense("last_linear", "fc")
    return wm


register_specs(
    # timm inception_v4.py: pretrained cfg 299, mean = std 0.5, bicubic, crop 0.875.
    ModelSpec("timm", "inception_v4", "inception_v4", TIMM_GRAPH, weight_map="from_timm", crop_pct=0.875,
              random_init=CONDITIONED, variant="BN eps 1e-3, exclusive 3x3 avg pools, unpadded max pools",
              notes="timm/models/inception_v4.py; a 1001-class TF-slim head loses its background class (index 0) "
                    "unless `--keep-background`"),
)
