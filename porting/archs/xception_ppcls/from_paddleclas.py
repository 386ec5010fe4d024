"""PaddleClas Xception41/65/71 (ppcls/arch/backbone/model_zoo/xception.py) -> the XceptionPP model.

Source keys are Paddle's structured names (ParamAttr-named files are translated by the worker). There is no
dropout before the head, so nothing is folded into it. Paddle names the separable convs of entry blocks
`_conv1` / `_conv2` but those of the exit block `_conv_1` / `_conv_2`, and the middle ones `_conv_0.._conv_2`.
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception_ppcls import ENTRY_BLOCKS
from porting.weight_maps import WeightMap


def separable(wm: WeightMap, src: str, dst: str) -> None:
    wm.conv_bn(f"{src}._pointwise_conv", f"{dst}.pointwise")
    wm.conv_bn(f"{src}._depthwise_conv", f"{dst}.depthwise")


def down_block(wm: WeightMap, src: str, dst: str, sep_names: tuple[str, str]) -> None:
    wm.conv(f"{src}._short", f"{dst}.shortcut")
    separable(wm, f"{src}.{sep_names[0]}", f"{dst}.sep1")
    separable(wm, f"{src}.{sep_names[1]}", f"{dst}.sep2")
    wm.layer(src, dst, "block")


def build(spec, convention) -> WeightMap:
    cfg = spec.config
    wm = convention.map(spec.id)
    wm.conv_bn("_entry_flow._conv1", "entry.conv1", act=True)  # BN(act='relu'): compared after our ReLU
    wm.conv_bn("_entry_flow._conv2", "entry.conv2", act=True)
    for i in range(len(ENTRY_BLOCKS[cfg.entry_blocks])):
        down_block(wm, f"_entry_flow._conv_{i}", f"entry.block{i}", ("_conv1", "_conv2"))
    for i in range(cfg.middle_blocks):
        for k in range(3):
            separable(wm, f"_middle_flow._conv_{i}._conv_{k}", f"middle.block{i}.sep{k + 1}")
        wm.layer(f"_middle_flow._conv_{i}", f"middle.block{i}", "block")
    down_block(wm, "_exit_flow._conv_0", "exit.block", ("_conv_1", "_conv_2"))
    separable(wm, "_exit_flow._conv_1", "exit.sep1")
    separable(wm, "_exit_flow._conv_2", "exit.sep2")
    wm.dense("_exit_flow._out", "fc")
    return wm


register_specs(*[
    ModelSpec("paddleclas", f"Xception{depth}", "xception_ppcls",
              {"entry_blocks": entry, "middle_blocks": middle, "bn_eps": 1e-5}, weight_map="from_paddleclas",
              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=299 / 320,
              variant=f"entry {entry} / middle {middle} blocks, BN eps 1e-5",
              notes="ppcls xception.py: sep conv = pointwise -> BN -> depthwise -> BN, bare 1x1 shortcut conv; "
                    "`.pdparams` keyed by structure or by ParamAttr name (`fc_weights`...)")
    for depth, entry, middle in ((41, 3, 8), (65, 3, 16), (71, 5, 16))])
