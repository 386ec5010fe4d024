"""timm aligned Xception (timm/models/xception_aligned.py: xception41/65/71, xception41p/65p) -> XceptionAligned.

The MindSpore cells carry timm's module names, so most rows are name-for-name. Where timm's module output
is taken after a ReLU that lives inside it (ConvNormAct's BatchNormAct2d `bn`, the pre-activation `norm`s),
the parity tap points at the MindSpore ReLU cell that follows the BN.
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception_aligned import CONDITIONED, block_specs
from porting.weight_maps import WeightMap


def build(spec, convention) -> WeightMap:
    cfg = spec.config
    wm = convention.map(spec.id)
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


TIMM_FILE = "timm/models/xception_aligned.py"


def _timm(name: str, layout: str, preact: bool, eps: float, crop: float, variant: str, notes: str = TIMM_FILE):
    """timm's aligned Xception `name`; eps read from each model function."""
    return ModelSpec("timm", name, "xception_aligned", {"layout": layout, "preact": preact, "bn_eps": eps},
                     weight_map="from_timm", crop_pct=crop, random_init=CONDITIONED, variant=variant, notes=notes)


register_specs(
    _timm("xception41", "41", False, 1e-3, 0.903, "layout 41: entry 3 / middle 8 blocks, post-activation, BN eps 1e-3",
          "timm/models/xception_aligned.py; symmetric padding (`get_padding`), stride on each block's 3rd separable "
          "conv, last block without residual and with ReLU inside its separable convs"),
    _timm("xception65", "65", False, 1e-3, 0.94, "layout 65: entry 3 / middle 16 blocks, post-activation, BN eps 1e-3"),
    _timm("xception71", "71", False, 1e-3, 0.903, "layout 71: entry 5 / middle 16 blocks, post-activation, BN eps 1e-3"),
    _timm("xception41p", "41", True, 1e-5, 0.94, "layout 41, pre-activation, BN eps 1e-5",
          "timm/models/xception_aligned.py: BN+ReLU before each block (the shortcut sees the normalised input), bare "
          "1x1 shortcut conv, stem conv 2 without BN, final ReLU"),
    _timm("xception65p", "65", True, 1e-3, 0.94, "layout 65, pre-activation, BN eps 1e-3",
          "timm/models/xception_aligned.py (unlike 41p, built with eps 1e-3)"),
)
