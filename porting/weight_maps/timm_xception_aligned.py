"""timm aligned Xception (timm/models/xception_aligned.py: xception41/65/71, xception41p/65p)
-> porting.models.xception_aligned.XceptionAligned.

The MindSpore cells carry timm's module names, so most rows are name-for-name. Where timm's module output
is taken after a ReLU that lives inside it (ConvNormAct's BatchNormAct2d `bn`, the pre-activation `norm`s),
the parity tap points at the MindSpore ReLU cell that follows the BN.
"""
from porting.models.xception_aligned import XceptionAlignedConfig, block_specs
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import batchnorm as bn
from porting.weight_maps.conventions import conv, dense


def conv_bn_act(wm: WeightMap, name: str, act: bool) -> None:
    """timm ConvNormAct `name` (conv + BatchNormAct2d `bn`) -> our ConvBnAct `name`."""
    conv(wm, f"{name}.conv", f"{name}.conv")
    bn(wm, f"{name}.bn", f"{name}.bn", tap=f"{name}.act" if act else None)


def build(spec) -> WeightMap:
    cfg = XceptionAlignedConfig(**spec.arch_config)
    wm = WeightMap(spec.id, ignore=["*.num_batches_tracked"])
    conv_bn_act(wm, "stem.0", act=True)
    if cfg.preact:
        conv(wm, "stem.1", "stem.1")
    else:
        conv_bn_act(wm, "stem.1", act=True)
    for i, b in enumerate(block_specs(cfg)):
        blk = f"blocks.{i}"
        if cfg.preact:
            bn(wm, f"{blk}.norm", f"{blk}.norm", tap=f"{blk}.norm_act")
        for k in range(1, 4):
            sep = f"{blk}.stack.conv{k}"
            if cfg.preact:
                if k > 1:
                    bn(wm, f"{sep}.norm", f"{sep}.norm", tap=f"{sep}.act")
                conv(wm, f"{sep}.conv_dw", f"{sep}.conv_dw")
                conv(wm, f"{sep}.conv_pw", f"{sep}.conv_pw")
            else:
                conv(wm, f"{sep}.conv_dw", f"{sep}.conv_dw")
                bn(wm, f"{sep}.bn_dw", f"{sep}.bn_dw")  # timm's act_dw is a separate module
                conv(wm, f"{sep}.conv_pw", f"{sep}.conv_pw")
                bn(wm, f"{sep}.bn_pw", f"{sep}.bn_pw")
            wm.layer(sep, sep, "separable")
        if b.has_shortcut:
            if cfg.preact:
                conv(wm, f"{blk}.shortcut", f"{blk}.shortcut")
            else:
                conv_bn_act(wm, f"{blk}.shortcut", act=False)
        wm.layer(blk, blk, "block")
    if cfg.preact:
        wm.layer("act", "act", "act")
    dense(wm, "head.fc", "fc")
    return wm
