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

from collections import OrderedDict
from dataclasses import asdict, dataclass

from mindspore import nn

from porting.errors import PortingError
from porting.models.layers import (BatchNorm2d, Conv2d, ConvBnAct, Dense, GlobalAvgPool, ReLU,
                                   SeparableConvBnAct, Sequential, Traced)

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


def _padding(kernel: int, stride: int, dilation: int) -> int:
    return ((stride - 1) + dilation * (kernel - 1)) // 2


class _Residual(Traced, nn.Cell):
    """Adds the block's skip: none (timm's last exit block), a 1x1 shortcut conv, or the identity."""

    def residual(self, out, x):
        if self.no_skip:
            return out
        if self.has_shortcut:
            return out + self.shortcut(x)
        return out + x


class XceptionModule(_Residual):
    """Post-activation block (timm XceptionModule, Paddle Xception_Block)."""

    def __init__(self, b: BlockSpec, eps: float):
        super().__init__()
        self.has_shortcut, self.no_skip = b.has_shortcut, b.no_skip
        if self.has_shortcut:
            self.shortcut = ConvBnAct(b.in_chs, b.out_chs[-1], 1, b.stride, 0, eps=eps, act=False)
        layers, cin = [], b.in_chs
        for i in range(3):
            stride = b.stride if i == 2 else 1
            if b.start_with_relu:
                layers.append((f"act{i + 1}", ReLU()))
            layers.append((f"conv{i + 1}", SeparableConvBnAct(
                cin, b.out_chs[i], 3, stride, _padding(3, stride, b.dilation), b.dilation, eps,
                act=not b.start_with_relu)))
            cin = b.out_chs[i]
        self.stack = Sequential(OrderedDict(layers))

    def construct(self, x):
        return self.residual(self.stack(x), x)


class PreSeparableConv(Traced, nn.Cell):
    """[BN -> ReLU] -> depthwise -> pointwise (timm PreSeparableConv2d)."""

    def __init__(self, cin, cout, stride, dilation, eps, first_act):
        super().__init__()
        self.first_act = first_act
        if first_act:
            self.norm = BatchNorm2d(cin, eps)
            self.act = ReLU()
        self.conv_dw = Conv2d(cin, cin, 3, stride, _padding(3, stride, dilation), dilation, groups=cin)
        self.conv_pw = Conv2d(cin, cout, 1)

    def construct(self, x):
        if self.first_act:
            x = self.act(self.norm(x))
        return self.conv_pw(self.conv_dw(x))


class PreXceptionModule(_Residual):
    """Pre-activation block (timm PreXceptionModule): the shortcut takes the normalised input."""

    def __init__(self, b: BlockSpec, eps: float):
        super().__init__()
        self.has_shortcut, self.no_skip = b.has_shortcut, b.no_skip
        if self.has_shortcut:
            self.shortcut = Conv2d(b.in_chs, b.out_chs[-1], 1, b.stride, 0)
        self.norm = BatchNorm2d(b.in_chs, eps)
        self.norm_act = ReLU()
        layers, cin = [], b.in_chs
        for i in range(3):
            layers.append((f"conv{i + 1}", PreSeparableConv(cin, b.out_chs[i], b.stride if i == 2 else 1,
                                                             b.dilation, eps, first_act=i > 0)))
            cin = b.out_chs[i]
        self.stack = Sequential(OrderedDict(layers))

    def construct(self, x):
        x = self.norm_act(self.norm(x))
        return self.residual(self.stack(x), x)


class XceptionAligned(Traced, nn.Cell):
    """Cell names follow timm (`stem.0.conv`, `blocks.3.stack.conv2.bn_dw`...), the head is `fc`."""

    def __init__(self, num_classes: int = 1000, cfg: XceptionAlignedConfig = XceptionAlignedConfig()):
        super().__init__()
        eps = cfg.bn_eps
        stem = [("0", ConvBnAct(3, 32, 3, 2, 1, eps=eps))]
        stem.append(("1", Conv2d(32, 64, 3, 1, 1) if cfg.preact else ConvBnAct(32, 64, 3, 1, 1, eps=eps)))
        self.stem = Sequential(OrderedDict(stem))
        block = PreXceptionModule if cfg.preact else XceptionModule
        self.blocks = Sequential(OrderedDict((str(i), block(b, eps)) for i, b in enumerate(block_specs(cfg))))
        self.preact = cfg.preact
        if cfg.preact:
            self.act = ReLU()
        self.global_pool = GlobalAvgPool()
        self.fc = Dense(2048, num_classes)
        self.num_classes = num_classes

    def construct(self, x):
        x = self.blocks(self.stem(x))
        if self.preact:
            x = self.act(x)
        return self.fc(self.global_pool(x))
