"""PaddleClas `InceptionV4` (ppcls/arch/backbone/model_zoo/inception_v4.py) -> the InceptionV4 model.

Each Paddle ConvBNLayer `<x>._conv` / `<x>._batch_norm` (BatchNorm with act='relu', so its output is
post-ReLU) maps onto a ConvBnAct of the timm-named MindSpore model, which the `paddleclas` variant computes in
Paddle's order (pool branch first in each concat, swapped factorized stacks). Paddle's layers are named by
role, not position: `_conv4_2` of Inception-B is the 7x1 conv that the timm naming calls `branch2.1`.

Head: Paddle's Linear is [in, out], and Dropout(p=0.2, mode='downscale_in_infer') multiplies its input by
0.8 at inference, so fc.weight = 0.8 * out.weight^T (the bias is not scaled).
"""
from porting.archs.inception_v4 import CONDITIONED
from porting.archs.registry import ModelSpec, register_specs
from porting.weight_maps import WeightMap

DROPOUT_KEEP = 0.8  # Dropout(p=0.2, mode="downscale_in_infer")

STEM = {  # InceptionStem: timm's features.0 .. features.5 in one Paddle layer
    "_conv_1": "features.0", "_conv_2": "features.1", "_conv_3": "features.2",
    "_conv2": "features.3.conv",
    "_conv1_1": "features.4.branch0.0", "_conv1_2": "features.4.branch0.1",
    "_conv2_1": "features.4.branch1.0", "_conv2_2": "features.4.branch1.1",  # 7x1 first in Paddle
    "_conv2_3": "features.4.branch1.2", "_conv2_4": "features.4.branch1.3",
    "_conv3": "features.5.conv",
}
# Paddle unit -> MindSpore unit inside one block; pools: Paddle `_pool` -> MindSpore pool cell
BLOCKS = {
    "_inceptionA": ("branch3.0", {
        "_conv1": "branch3.1", "_conv2": "branch0", "_conv3_1": "branch1.0", "_conv3_2": "branch1.1",
        "_conv4_1": "branch2.0", "_conv4_2": "branch2.1", "_conv4_3": "branch2.2"}),
    "_reductionA": ("branch2", {
        "_conv2": "branch0", "_conv3_1": "branch1.0", "_conv3_2": "branch1.1", "_conv3_3": "branch1.2"}),
    "_inceptionB": ("branch3.0", {
        "_conv1": "branch3.1", "_conv2": "branch0", "_conv3_1": "branch1.0", "_conv3_2": "branch1.1",
        "_conv3_3": "branch1.2", "_conv4_1": "branch2.0", "_conv4_2": "branch2.1", "_conv4_3": "branch2.2",
        "_conv4_4": "branch2.3", "_conv4_5": "branch2.4"}),
    "_reductionB": ("branch2", {
        "_conv2_1": "branch0.0", "_conv2_2": "branch0.1", "_conv3_1": "branch1.0", "_conv3_2": "branch1.1",
        "_conv3_3": "branch1.2", "_conv3_4": "branch1.3"}),
    "_inceptionC": ("branch3.0", {
        "_conv1": "branch3.1", "_conv2": "branch0", "_conv3_0": "branch1_0", "_conv3_1": "branch1_1a",
        "_conv3_2": "branch1_1b", "_conv4_0": "branch2_0", "_conv4_00": "branch2_1", "_conv4_000": "branch2_2",
        "_conv4_1": "branch2_3a", "_conv4_2": "branch2_3b"}),
}
# Paddle block name -> MindSpore features index (features.6 .. features.21)
LAYOUT = [*[(f"_inceptionA_{k}", "_inceptionA") for k in range(1, 5)], ("_reductionA", "_reductionA"),
          *[(f"_inceptionB_{k}", "_inceptionB") for k in range(1, 8)], ("_reductionB", "_reductionB"),
          *[(f"_inceptionC_{k}", "_inceptionC") for k in range(1, 4)]]


def build(spec, convention) -> WeightMap:
    wm = convention.map("paddleclas:InceptionV4")
    # the stem's `_pool` runs twice (Mixed3a and Mixed5a), so it is not tapped; the stem's output is
    for src, dst in STEM.items():
        wm.conv_bn(f"_inception_stem.{src}", dst, act=True)
    wm.layer("_inception_stem", "features.5", "block")
    for i, (block, kind) in enumerate(LAYOUT, 6):
        pool, units = BLOCKS[kind]
        wm.layer(f"{block}._pool", f"features.{i}.{pool}", "pool")
        for src, dst in units.items():
            wm.conv_bn(f"{block}.{src}", f"features.{i}.{dst}", act=True)
        wm.layer(block, f"features.{i}", "block")
    wm.dense("out", "fc", keep=DROPOUT_KEEP)
    return wm


register_specs(
    # PaddleClas inception_v4.py; eval config: resize short side 320 -> crop 299, ImageNet mean/std.
    ModelSpec("paddleclas", "InceptionV4", "inception_v4",
              {"bn_eps": 1e-5, "pool_branch_first": True, "swap_factorized": True}, weight_map="from_paddleclas",
              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=299 / 320,
              random_init=CONDITIONED,
              variant="BN eps 1e-5, pool branch first in every concat, stem / B / C factorized 1xk-kx1 stacks swapped",
              notes="ppcls inception_v4.py; Dropout(downscale_in_infer) x0.8 folded into `fc.weight`; Linear "
                    "[in,out] transposed"),
)
