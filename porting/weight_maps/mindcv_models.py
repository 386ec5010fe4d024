"""mindcv (MindSpore's model zoo, mindcv/models/) -> porting's MindSpore models, for checkpoints users already have.

mindcv re-implements these models after the same Cadene/timm definitions, so each table is timm's, with the
module paths renamed to mindcv's and BN tensors under MindSpore's names (gamma, beta, moving_*). Where mindcv's
graph differs from timm's (its 'same' max pools, SE in Dense layers), the spec's arch config follows mindcv.
"""
from __future__ import annotations

import re

from porting.weight_maps import WeightMap, renamed_source
from porting.weight_maps import timm_inception_v4, timm_legacy_seresnext, timm_xception


def _xception(path: str) -> str:
    """timm legacy_xception `block1..block12` -> mindcv `blocks.0..11`; `fc` -> `classifier`."""
    path = re.sub(r"^block(\d+)", lambda m: f"blocks.{int(m.group(1)) - 1}", path)
    return "classifier" if path == "fc" else path


# timm's inception_v4 features.0-5 are the cells of mindcv's Stem (features.0); the three mixed blocks have
# no cell of their own there (mindcv concatenates inside Stem.construct), so their outputs are not compared.
INCEPTION_STEM = {
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


def _inception_v4(path: str) -> str | None:
    for timm_name, mindcv_name in INCEPTION_STEM.items():
        if path == timm_name or path.startswith(timm_name + "."):
            return None if mindcv_name is None else mindcv_name + path[len(timm_name):]
    if path == "last_linear":
        return "classifier"
    # blocks after the stem: features.6.. -> features.1..; branchN -> branch_N
    path = re.sub(r"^features\.(\d+)", lambda m: f"features.{int(m.group(1)) - 5}", path)
    path = re.sub(r"branch\d_\d[ab]?", lambda m: INCEPTION_C_BRANCHES[m.group(0)], path)
    return re.sub(r"branch(\d)(?=\.|$)", r"branch_\1", path)


def _inception_v4_tap(path: str) -> str | None:
    """timm's `.bn` is BatchNormAct2d (ReLU included): mindcv's BasicConv2d has it as the `.relu` cell."""
    path = _inception_v4(path)
    return path[: -len(".bn")] + ".relu" if path and path.endswith(".bn") else path


def _seresnext(path: str) -> str:
    """timm legacy_seresnext50_32x4d (Cadene names) -> mindcv senet.py: stem Sequential, SE in Dense layers."""
    path = {"layer0.conv1": "layer0.0", "layer0.bn1": "layer0.1", "last_linear": "classifier"}.get(path, path)
    return path.replace("se_module.fc1", "se_module.conv_reduce").replace("se_module.fc2", "se_module.conv_expand")


def build(spec) -> WeightMap:
    if spec.name == "xception":
        return renamed_source(timm_xception.build(), spec.id, _xception)
    if spec.name == "inception_v4":
        return renamed_source(timm_inception_v4.build(), spec.id, _inception_v4, _inception_v4_tap)
    if spec.name == "seresnext50_32x4d":
        return renamed_source(timm_legacy_seresnext.build(spec), spec.id, _seresnext)
    raise ValueError(f"no mindcv weight map for {spec.name}")
