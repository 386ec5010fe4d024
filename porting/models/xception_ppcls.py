"""PaddleClas Xception41 / Xception65 / Xception71 (ppcls/arch/backbone/model_zoo/xception.py) in MindSpore.

Not timm's aligned Xception of the same names (PORTING_NOTES.md section 4, row 9). Read from the Paddle code:
- stem: ConvBNLayer 3->32 (3x3, stride 2) and 32->64 (3x3), both padding (k-1)//2 = 1, BN with act='relu';
- separable conv = pointwise 1x1 conv -> BN -> depthwise 3x3 conv (padding 1) -> BN, no activation inside,
  no conv bias; every BN is Paddle's `nn.BatchNorm` (eps 1e-5);
- entry / exit blocks: shortcut = bare 1x1 conv with the block's stride (no BN) on the block input (before
  any ReLU); main path = [ReLU] -> sep -> ReLU -> sep -> MaxPool2D(3, stride, padding=1); out = short + pool.
  The pool is there even when the stride is 1 (Xception71's entry blocks 1 and 3): a 3x3 max filter;
- entry flow: 3 blocks (64->128 s2, 128->256 s2, 256->728 s2), or 5 for Xception71 (64->128 s2,
  128->256 s1, 256->256 s2, 256->728 s1, 728->728 s2); the first block has no leading ReLU;
- middle flow: 8 (Xception41) or 16 blocks of (ReLU -> sep) x 3 plus the identity;
- exit flow: block 728 -> (728, 1024) stride 2, then sep 1024->1536, ReLU, sep 1536->2048, ReLU, global
  average pool, Linear (no dropout).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

from mindspore import nn

from porting.errors import PortingError
from porting.models.layers import (Conv2d, ConvBnAct, Dense, GlobalAvgPool, MaxPool2d, ReLU, Sequential,
                                   Traced)

# (in, out, stride, ReLU first) of the entry-flow blocks, by entry_flow_block_num
ENTRY_BLOCKS = {
    3: [(64, 128, 2, False), (128, 256, 2, True), (256, 728, 2, True)],
    5: [(64, 128, 2, False), (128, 256, 1, True), (256, 256, 2, True), (256, 728, 1, True),
        (728, 728, 2, True)],
}
MIDDLE_BLOCKS = (8, 16)


@dataclass(frozen=True)
class XceptionPPConfig:
    entry_blocks: int = 3  # 3 (Xception41/65) or 5 (Xception71)
    middle_blocks: int = 8  # 8 (Xception41) or 16 (Xception65/71)
    bn_eps: float = 1e-5

    def __post_init__(self):
        if self.entry_blocks not in ENTRY_BLOCKS or self.middle_blocks not in MIDDLE_BLOCKS:
            raise PortingError(f"xception_ppcls: entry_blocks must be 3 or 5 and middle_blocks 8 or 16, "
                               f"got {self.entry_blocks} / {self.middle_blocks}")

    def to_dict(self) -> dict:
        return asdict(self)


class PointwiseSeparable(Traced, nn.Cell):
    """PaddleClas xception.py `SeparableConv`: pointwise 1x1 -> BN -> depthwise 3x3 -> BN."""

    def __init__(self, in_channels, out_channels, eps):
        super().__init__()
        self.pointwise = ConvBnAct(in_channels, out_channels, 1, 1, 0, eps=eps, act=False)
        self.depthwise = ConvBnAct(out_channels, out_channels, 3, 1, 1, groups=out_channels, eps=eps, act=False)

    def construct(self, x):
        return self.depthwise(self.pointwise(x))


class DownBlock(Traced, nn.Cell):
    """Entry/exit block: bare 1x1 shortcut conv + ([ReLU] sep ReLU sep maxpool)."""

    def __init__(self, cin, mid, cout, stride, relu_first, eps):
        super().__init__()
        self.shortcut = Conv2d(cin, cout, 1, stride, 0)
        self.relu_first = relu_first
        if relu_first:
            self.act1 = ReLU()
        self.sep1 = PointwiseSeparable(cin, mid, eps)
        self.act2 = ReLU()
        self.sep2 = PointwiseSeparable(mid, cout, eps)
        self.pool = MaxPool2d(3, stride, 1)

    def construct(self, x):
        short = self.shortcut(x)
        y = x
        if self.relu_first:
            y = self.act1(y)
        y = self.pool(self.sep2(self.act2(self.sep1(y))))
        return short + y


class MiddleBlock(Traced, nn.Cell):
    def __init__(self, channels, eps):
        super().__init__()
        self.act1, self.sep1 = ReLU(), PointwiseSeparable(channels, channels, eps)
        self.act2, self.sep2 = ReLU(), PointwiseSeparable(channels, channels, eps)
        self.act3, self.sep3 = ReLU(), PointwiseSeparable(channels, channels, eps)

    def construct(self, x):
        y = self.sep1(self.act1(x))
        y = self.sep2(self.act2(y))
        y = self.sep3(self.act3(y))
        return x + y


class XceptionPP(Traced, nn.Cell):
    def __init__(self, num_classes: int = 1000, cfg: XceptionPPConfig = XceptionPPConfig()):
        super().__init__()
        eps = cfg.bn_eps
        entry = [("conv1", ConvBnAct(3, 32, 3, 2, 1, eps=eps)), ("conv2", ConvBnAct(32, 64, 3, 1, 1, eps=eps))]
        for i, (cin, cout, stride, relu_first) in enumerate(ENTRY_BLOCKS[cfg.entry_blocks]):
            entry.append((f"block{i}", DownBlock(cin, cout, cout, stride, relu_first, eps)))
        self.entry = Sequential(OrderedDict(entry))
        self.middle = Sequential(OrderedDict((f"block{i}", MiddleBlock(728, eps))
                                             for i in range(cfg.middle_blocks)))
        self.exit = Sequential(OrderedDict([
            ("block", DownBlock(728, 728, 1024, 2, True, eps)),
            ("sep1", PointwiseSeparable(1024, 1536, eps)), ("act1", ReLU()),
            ("sep2", PointwiseSeparable(1536, 2048, eps)), ("act2", ReLU()),
        ]))
        self.global_pool = GlobalAvgPool()
        self.fc = Dense(2048, num_classes)
        self.num_classes = num_classes

    def construct(self, x):
        return self.fc(self.global_pool(self.exit(self.middle(self.entry(x)))))
