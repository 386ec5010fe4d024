"""PaddleClas Xception41_deeplab / Xception65_deeplab (ppcls/arch/backbone/model_zoo/xception_deeplab.py)
-> XceptionAligned (layout 41/65, post-activation, BN eps 1e-3, exit_dilation 2).

Paddle names the blocks `xception_65/entry_flow/block1`, `xception_65/middle_flow/block1`, `_exit_flow_1`,
`_exit_flow_2`; inside, `_conv1.._conv3` are separable convs (`_conv1` depthwise, `_bn1`, `_conv2`
pointwise, `_bn2`) and `_short` the shortcut ConvBNLayer (children `_conv`, `_bn`). BatchNorm(act='relu')
applies the ReLU inside the BN layer, so those taps point at our ReLU cell. Before the pool the model applies
Dropout(p=0.5, mode='downscale_in_infer'), which at inference multiplies by 0.5: pool and fc are linear, so the
factor is folded into the fc weight (not the bias).
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.xception_aligned import CONDITIONED, ENTRY, MIDDLE, XceptionAlignedConfig, block_specs
from porting.weight_maps import WeightMap

DROPOUT_KEEP = 0.5  # Dropout(p=0.5, mode="downscale_in_infer"): inference output = x * (1 - p)
UNIT = ("_conv", "_bn")  # this file's ConvBNLayer names its BN `_bn`, not `_batch_norm`


def block_names(cfg: XceptionAlignedConfig) -> list[str]:
    """Paddle's sublayer name of each block, in order."""
    backbone, layout = f"xception_{cfg.layout}", str(cfg.layout)
    return ([f"{backbone}/entry_flow/block{i + 1}" for i in range(len(ENTRY[layout]))]
            + [f"{backbone}/middle_flow/block{i + 1}" for i in range(MIDDLE[layout])]
            + ["_exit_flow_1", "_exit_flow_2"])


def build(spec, convention) -> WeightMap:
    cfg = spec.config
    wm = convention.map(spec.id)
    for src, dst in (("_conv1", "stem.0"), ("_conv2", "stem.1")):  # ConvBNLayer(act='relu')
        wm.conv_bn(src, dst, act=True, unit=UNIT)
    for i, (src, b) in enumerate(zip(block_names(cfg), block_specs(cfg))):
        dst = f"blocks.{i}"
        act = not b.start_with_relu  # activation_fn_in_separable_conv: BN(act='relu') inside
        for k in range(1, 4):
            s, d = f"{src}._conv{k}", f"{dst}.stack.conv{k}"
            wm.conv(f"{s}._conv1", f"{d}.conv_dw")
            wm.bn(f"{s}._bn1", f"{d}.bn_dw", tap=f"{d}.act_dw" if act else None)
            wm.conv(f"{s}._conv2", f"{d}.conv_pw")
            wm.bn(f"{s}._bn2", f"{d}.bn_pw", tap=f"{d}.act_pw" if act else None)
            wm.layer(s, d, "separable")
        if b.has_shortcut:
            wm.conv_bn(f"{src}._short", f"{dst}.shortcut", unit=UNIT)
        wm.layer(src, dst, "block")
    wm.dense("_fc", "fc", keep=DROPOUT_KEEP)
    return wm


register_specs(
    # PaddleClas Xception41/65_deeplab (ppcls/arch/backbone/model_zoo/xception_deeplab.py): the post-activation
    # topology with BN eps 1e-3 and the last block dilated by 2; Dropout downscale_in_infer x0.5 folded into the
    # head. Eval preprocessing as PaddleClas's Xception configs: resize short side 320 -> centre crop 299,
    # ImageNet mean/std. Synthetic BN betas shifted by +1 as for timm's.
    *[ModelSpec("paddleclas", f"Xception{depth}_deeplab", "xception_aligned",
                {"layout": str(depth), "preact": False, "bn_eps": 1e-3, "exit_dilation": 2},
                weight_map="from_paddleclas", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                interpolation="bilinear", crop_pct=299 / 320, random_init=CONDITIONED,
                variant=f"layout {depth}, post-activation, BN eps 1e-3, exit block dilation 2",
                notes="ppcls xception_deeplab.py; Dropout(downscale_in_infer) x0.5 folded into `fc.weight`; Linear "
                      "[in,out] transposed; `.pdparams` keyed by structure or by ParamAttr name" if depth == 41
                else "ppcls xception_deeplab.py, as Xception41_deeplab")
      for depth in (41, 65)],
)
