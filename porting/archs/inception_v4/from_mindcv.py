"""mindcv `inception_v4` (mindcv/models/inceptionv4.py) -> the InceptionV4 model.

mindcv re-implements timm's inception_v4 (the Cadene definition), so its table is timm's with the module paths
renamed and BN tensors under MindSpore's names. timm's features.0-5 are the cells of mindcv's Stem
(features.0); the three mixed blocks have no cell of their own there (mindcv concatenates inside
Stem.construct), so their outputs are not compared.
"""
import re

from porting.archs.inception_v4 import CONDITIONED, TIMM_GRAPH, from_timm
from porting.archs.registry import ModelSpec, register_specs
from porting.weight_maps import WeightMap, renamed_source

STEM = {
    "features.0": "features.0.conv2d_1a_3x3", "features.1": "features.0.conv2d_2a_3x3",
    "features.2": "features.0.conv2d_2b_3x3",
    "features.3.maxpool": "features.0.mixed_3a_branch_0", "features.3.conv": "features.0.mixed_3a_branch_1",
    "features.4.branch0": "features.0.mixed_4a_branch_0", "features.4.branch1": "features.0.mixed_4a_branch_1",
    "features.5.conv": "features.0.mixed_5a_branch_0", "features.5.maxpool": "features.0.mixed_5a_branch_1",
    "features.3": None, "features.4": None, "features.5": None,
}
# Inception-C's factorized branches: timm (Cadene) names -> mindcv names
INCEPTION_C_BRANCHES = {"branch1_0": "branch_1", "branch1_1a": "branch_1_1", "branch1_1b": "branch_1_2",
                        "branch2_0": "branch_2.0", "branch2_1": "branch_2.1", "branch2_2": "branch_2.2",
                        "branch2_3a": "branch_2_1", "branch2_3b": "branch_2_2"}


def rename(path: str) -> str | None:
    for timm_name, mindcv_name in STEM.items():
        if path == timm_name or path.startswith(timm_name + "."):
            return None if mindcv_name is None else mindcv_name + path[len(timm_name):]
    if path == "last_linear":
        return "classifier"
    # blocks after the stem: features.6.. -> features.1..; branchN -> branch_N
    path = re.sub(r"^features\.(\d+)", lambda m: f"features.{int(m.group(1)) - 5}", path)
    path = re.sub(r"branch\d_\d[ab]?", lambda m: INCEPTION_C_BRANCHES[m.group(0)], path)
    return re.sub(r"branch(\d)(?=\.|$)", r"branch_\1", path)


def rename_tap(path: str) -> str | None:
    """timm's `.bn` is BatchNormAct2d (ReLU included): mindcv's BasicConv2d has it as the `.relu` cell."""
    path = rename(path)
    return path[: -len(".bn")] + ".relu" if path and path.endswith(".bn") else path


def build(spec, convention) -> WeightMap:
    return renamed_source(from_timm.build(spec, convention), spec.id, rename, rename_tap)


register_specs(
    # mindcv inceptionv4.py: timm's graph ('same' avg pools that exclude the padding); eval as mindcv's
    # create_transforms: resize the short side to size / 0.875 (bilinear, OpenCV) -> centre crop, ImageNet mean/std.
    ModelSpec("mindcv", "inception_v4", "inception_v4", dict(TIMM_GRAPH), weight_map="from_mindcv",
              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=0.875,
              random_init=CONDITIONED, variant="as `timm:inception_v4`",
              notes="mindcv/models/inceptionv4.py; the stem is one cell there, so its three mixed blocks are "
                    "compared through their convs and pools only"),
)
