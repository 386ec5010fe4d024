"""PaddleClas's Xception41/65/71 in MindSpore (the graph is described in __init__.py)."""
from __future__ import annotations

from collections import OrderedDict

from mindspore import nn

from porting.archs.xception_ppcls import ENTRY_BLOCKS, XceptionPPConfig
from porting.archs.layers import (Conv2d, ConvBnAct, Dense, GlobalAvgPool, MaxPool2d, ReLU, Sequential,
                                   Traced)


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
