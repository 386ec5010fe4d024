"""PaddleClas Xception41/65/71 (ppcls/arch/backbone/model_zoo/xception.py) -> porting.models.xception_ppcls.

Source keys are Paddle's structured names (ParamAttr-named files are translated by the worker). Paddle's
`nn.BatchNorm` stores weight/bias/_mean/_variance; `Linear` stores its weight [in, out]. There is no dropout
before the head, so nothing is folded into it. Paddle names the separable convs of entry blocks `_conv1` /
`_conv2` but those of the exit block `_conv_1` / `_conv_2`, and the middle ones `_conv_0.._conv_2`.
"""
from porting.models.xception_ppcls import ENTRY_BLOCKS
from porting.weight_maps import IN_OUT_TO_OUT_IN, WeightMap
from porting.weight_maps.conventions import PADDLE_BN, batchnorm, conv, dense



def conv_bn(wm: WeightMap, src: str, dst: str, act: bool) -> None:
    """Paddle ConvBNLayer (`_conv`, `_batch_norm`, act fused into the BN) -> layers.ConvBnAct."""
    conv(wm, f"{src}._conv", f"{dst}.conv")
    # with act='relu' Paddle's BatchNorm layer outputs relu(bn(x)): compare it with our act cell
    batchnorm(wm, f"{src}._batch_norm", f"{dst}.bn", PADDLE_BN, tap=f"{dst}.act" if act else None)


def separable(wm: WeightMap, src: str, dst: str) -> None:
    conv_bn(wm, f"{src}._pointwise_conv", f"{dst}.pointwise", act=False)
    conv_bn(wm, f"{src}._depthwise_conv", f"{dst}.depthwise", act=False)


def down_block(wm: WeightMap, src: str, dst: str, sep_names: tuple[str, str]) -> None:
    conv(wm, f"{src}._short", f"{dst}.shortcut")
    separable(wm, f"{src}.{sep_names[0]}", f"{dst}.sep1")
    separable(wm, f"{src}.{sep_names[1]}", f"{dst}.sep2")
    wm.layer(src, dst, "block")


def build(spec=None) -> WeightMap:
    cfg = spec.arch_config if spec is not None else {"entry_blocks": 3, "middle_blocks": 8}
    wm = WeightMap(spec.id if spec is not None else "paddleclas:Xception41")
    conv_bn(wm, "_entry_flow._conv1", "entry.conv1", act=True)
    conv_bn(wm, "_entry_flow._conv2", "entry.conv2", act=True)
    for i in range(len(ENTRY_BLOCKS[cfg["entry_blocks"]])):
        down_block(wm, f"_entry_flow._conv_{i}", f"entry.block{i}", ("_conv1", "_conv2"))
    for i in range(cfg["middle_blocks"]):
        for k in range(3):
            separable(wm, f"_middle_flow._conv_{i}._conv_{k}", f"middle.block{i}.sep{k + 1}")
        wm.layer(f"_middle_flow._conv_{i}", f"middle.block{i}", "block")
    down_block(wm, "_exit_flow._conv_0", "exit.block", ("_conv_1", "_conv_2"))
    separable(wm, "_exit_flow._conv_1", "exit.sep1")
    separable(wm, "_exit_flow._conv_2", "exit.sep2")
    dense(wm, "_exit_flow._out", "fc", transform=IN_OUT_TO_OUT_IN)
    return wm
