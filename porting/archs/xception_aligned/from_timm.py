"""timm aligned Xception (timm/models/xception_aligned.py: xception41/65/71, xception41p/65p) -> XceptionAligned.

The MindSpore cells carry timm's module names, so most rows are name-for-name. Where timm's module output
is taken after a ReLU that lives inside it (ConvNormAct's BatchNormAct2d `bn`, the pre-activation `norm`s),
the parity tap points at the MindSpore ReLU cell that follows the BN.
"""
from porting.archs.xception_aligned import block_specs
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import TIMM


def build(spec) -> WeightMap:
    cfg = spec.config
    wm = TIMM.map(spec.id)
    wm.conv_bn("stem.0", "stem.0", act=True)  # timm ConvNormAct (conv + BatchNormAct2d `bn`)
    if cfg.preact:
        wm.conv("stem.1", "stem.1")
    else:
        wm.conv_bn("stem.1", "stem.1", act=True)
    for i, b in enumerate(block_specs(cfg)):
        blk = f"blocks.{i}"
        if cfg.preact:
            wm.bn(f"{blk}.norm", f"{blk}.norm", tap=f"{blk}.norm_act")
        for k in range(1, 4):
            sep = f"{blk}.stack.conv{k}"
            if cfg.preact:
                if k > 1:
                    wm.bn(f"{sep}.norm", f"{sep}.norm", tap=f"{sep}.act")
                wm.conv(f"{sep}.conv_dw", f"{sep}.conv_dw")
                wm.conv(f"{sep}.conv_pw", f"{sep}.conv_pw")
            else:
                wm.conv(f"{sep}.conv_dw", f"{sep}.conv_dw")
                wm.bn(f"{sep}.bn_dw", f"{sep}.bn_dw")  # timm's act_dw is a separate module
                wm.conv(f"{sep}.conv_pw", f"{sep}.conv_pw")
                wm.bn(f"{sep}.bn_pw", f"{sep}.bn_pw")
            wm.layer(sep, sep, "separable")
        if b.has_shortcut:
            if cfg.preact:
                wm.conv(f"{blk}.shortcut", f"{blk}.shortcut")
            else:
                wm.conv_bn(f"{blk}.shortcut", f"{blk}.shortcut")
        wm.layer(blk, blk, "block")
    if cfg.preact:
        wm.layer("act", "act", "act")
    wm.dense("head.fc", "fc")
    return wm
