"""timm `legacy_xception` (timm/models/xception.py) -> the Xception model.

timm names the layers of a block by position in `rep`, a Sequential of [ReLU, SeparableConv, BN] triples
whose first ReLU is dropped in block1 (start_with_relu=False); we name them sep1/bn1, sep2/bn2...
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception import ENTRY_MIDDLE_EXIT
from porting.weight_maps import WeightMap


def separable(wm: WeightMap, src: str, dst: str) -> None:
    wm.conv(f"{src}.conv1", f"{dst}.depthwise", tap=False)
    wm.conv(f"{src}.pointwise", f"{dst}.pointwise", tap=False)
    wm.layer(src, dst, "separable")


def build(spec, convention) -> WeightMap:
    wm = convention.map("timm:legacy_xception")
    wm.conv("conv1", "features.conv1")
    wm.bn("bn1", "features.bn1")
    wm.conv("conv2", "features.conv2")
    wm.bn("bn2", "features.bn2")
    for b, (cin, cout, reps, stride, start_with_relu, _) in enumerate(ENTRY_MIDDLE_EXIT, 1):
        first = 1 if start_with_relu else 0  # index of the first SeparableConv in timm's `rep`
        for k in range(reps):
            separable(wm, f"block{b}.rep.{first + 3 * k}", f"features.block{b}.rep.sep{k + 1}")
            wm.bn(f"block{b}.rep.{first + 3 * k + 1}", f"features.block{b}.rep.bn{k + 1}")
        if cin != cout or stride != 1:
            wm.conv(f"block{b}.skip", f"features.block{b}.skip")
            wm.bn(f"block{b}.skipbn", f"features.block{b}.skip_bn")
        wm.layer(f"block{b}", f"features.block{b}", "block")
    separable(wm, "conv3", "features.conv3")
    wm.bn("bn3", "features.bn3")
    separable(wm, "conv4", "features.conv4")
    wm.bn("bn4", "features.bn4")
    wm.dense("fc", "fc")
    return wm


register_specs(
    ModelSpec("timm", "legacy_xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1},
              weight_map="from_timm", aliases=("xception",), crop_pct=0.8975,
              variant="BN eps 1e-5, symmetric padding", notes="timm/models/xception.py"),
)
