"""Aligned Xception (DeepLab's Xception-41/65/71) in MindSpore, one configurable implementation.

Reproduces timm `xception41`, `xception65`, `xception71` (post-activation blocks), `xception41p`,
`xception65p` (pre-activation blocks) from timm/models/xception_aligned.py, and PaddleClas
`Xception41_deeplab` / `Xception65_deeplab` (ppcls/arch/backbone/model_zoo/xception_deeplab.py), which is
the post-activation topology with the last block's separable convs dilated by 2.

Read from the sources (see PORTING_NOTES.md section 4, rows 1 and 10):
- every block has three separable convs; the stride sits on the third one's depthwise conv; a 1x1 shortcut
  (conv + BN, or a bare conv in the pre-activation blocks) exists when channels or stride change; the
  last block has no residual at all;
- post-activation blocks: ReLU -> sepconv(dw, BN, pw, BN) three times, except the last block, which puts
  ReLU after each BN inside the separable convs instead of before them;
- pre-activation blocks: BN+ReLU on the block input (the shortcut also sees the normalised input), then
  sepconv1 = dw, pw and sepconv2/3 = BN, ReLU, dw, pw; a final ReLU after the last block;
- padding is symmetric, timm `get_padding` = ((stride - 1) + dilation * (k - 1)) // 2, which equals
  Paddle's k // 2 * dilation for every conv these models have;
- BN eps: 1e-3 for xception41/65/71, xception65p and the Paddle models; 1e-5 (nn.BatchNorm2d's default)
  for xception41p.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from porting.errors import PortingError
from porting.archs.registry import Computes, register_arch, register_target_rules

ENTRY = {
    # (in, out, stride) of the entry flow, as in timm's block_cfg lists
    "41": [(64, 128, 2), (128, 256, 2), (256, 728, 2)],
    "65": [(64, 128, 2), (128, 256, 2), (256, 728, 2)],
    "71": [(64, 128, 2), (128, 256, 1), (256, 256, 2), (256, 728, 1), (728, 728, 2)],
}
MIDDLE = {"41": 8, "65": 16, "71": 16}


@dataclass(frozen=True)
class BlockSpec:
    in_chs: int
    out_chs: tuple[int, int, int]
    stride: int
    dilation: int = 1
    no_skip: bool = False
    start_with_relu: bool = True  # post-activation blocks only

    @property
    def has_shortcut(self) -> bool:
        return not self.no_skip and (self.out_chs[-1] != self.in_chs or self.stride != 1)


@register_arch("xception_aligned", model="porting.archs.xception_aligned.model:XceptionAligned", recipe="xception")
@dataclass(frozen=True)
class XceptionAlignedConfig:
    layout: str = "65"  # "41" | "65" | "71": the block list of timm's xception41/65/71
    preact: bool = False  # the pre-activation 'p' variants
    bn_eps: float = 1e-3
    exit_dilation: int = 1  # dilation of the last block's separable convs (2 in PaddleClas *_deeplab)

    def __post_init__(self):
        if str(self.layout) not in ENTRY:
            raise PortingError(f"xception_aligned layout '{self.layout}' unknown; known: {', '.join(ENTRY)}")

    def to_dict(self) -> dict:
        return asdict(self)


def block_specs(cfg: XceptionAlignedConfig) -> list[BlockSpec]:
    layout = str(cfg.layout)
    blocks = [BlockSpec(i, (o, o, o), s) for i, o, s in ENTRY[layout]]
    blocks += [BlockSpec(728, (728, 728, 728), 1)] * MIDDLE[layout]
    blocks.append(BlockSpec(728, (728, 1024, 1024), 2))
    blocks.append(BlockSpec(1024, (1536, 1536, 2048), 1, dilation=cfg.exit_dilation, no_skip=True,
                            start_with_relu=False))  # post-act: ReLU inside the separable convs
    return blocks


# Synthetic weights shift BN betas by +1: at beta mean 0 these random nets amplify fp32 rounding with depth (the
# pre-activation ones are chaotic: timm's own fp32 vs fp64 forward differ by 4e-3 relative at xception65p's last
# block at 299, 2e-5 for xception71); at +1 by 2e-5 and 4e-6.
CONDITIONED = {"bn_beta_mean": 1.0}  # timm's and PaddleClas's

register_target_rules(
    "xception_aligned",
    exit_dilation=Computes("PaddleClas's deeplab models dilate the last block's separable convs by 2, timm's do "
                           "not"),
)
