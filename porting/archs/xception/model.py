"""The original Xception in MindSpore, configurable for how each source computes it (see __init__.py)."""
from __future__ import annotations

from collections import OrderedDict

from mindspore import nn

from porting.archs.xception import ENTRY_MIDDLE_EXIT, XceptionConfig
from porting.archs.layers import (BatchNorm2d, Conv2d, Dense, GlobalAvgPool, MaxPool2d, ReLU, SeparableConv2d,
                                   Sequential, Traced)


class XceptionBlock(Traced, nn.Cell):
    def __init__(self, cin, cout, reps, stride, start_with_relu, grow_first, cfg: XceptionConfig):
        super().__init__()
        layers = []
        for i in range(reps):
            if grow_first:
                inc, outc = (cin if i == 0 else cout), cout
            else:
                inc, outc = cin, (cin if i < reps - 1 else cout)
            if i > 0 or start_with_relu:
                layers.append((f"act{i + 1}", ReLU()))
            layers.append((f"sep{i + 1}", SeparableConv2d(inc, outc, 3, 1, cfg.conv_padding)))
            layers.append((f"bn{i + 1}", BatchNorm2d(outc, cfg.bn_eps)))
        if stride != 1:
            layers.append(("pool", MaxPool2d(3, stride, cfg.pool_padding)))
        self.rep = Sequential(OrderedDict(layers))
        self.has_skip = cout != cin or stride != 1
        if self.has_skip:
            self.skip = Conv2d(cin, cout, 1, stride, 0)
            self.skip_bn = BatchNorm2d(cout, cfg.bn_eps)

    def construct(self, x):
        out = self.rep(x)
        if self.has_skip:
            return out + self.skip_bn(self.skip(x))
        return out + x


class Xception(Traced, nn.Cell):
    def __init__(self, num_classes: int = 1000, cfg: XceptionConfig = XceptionConfig()):
        super().__init__()
        eps = cfg.bn_eps
        stages = [
            ("conv1", Conv2d(3, 32, 3, 2, 0)), ("bn1", BatchNorm2d(32, eps)), ("act1", ReLU()),
            ("conv2", Conv2d(32, 64, 3, 1, 0)), ("bn2", BatchNorm2d(64, eps)), ("act2", ReLU()),
        ]
        for i, spec in enumerate(ENTRY_MIDDLE_EXIT, 1):
            stages.append((f"block{i}", XceptionBlock(*spec, cfg)))
        stages += [
            ("conv3", SeparableConv2d(1024, 1536, 3, 1, cfg.conv_padding)), ("bn3", BatchNorm2d(1536, eps)),
            ("act3", ReLU()),
            ("conv4", SeparableConv2d(1536, 2048, 3, 1, cfg.conv_padding)), ("bn4", BatchNorm2d(2048, eps)),
            ("act4", ReLU()),
        ]
        self.features = Sequential(OrderedDict(stages))
        self.global_pool = GlobalAvgPool()
        self.fc = Dense(2048, num_classes)
        self.num_classes = num_classes

    def construct(self, x):
        return self.fc(self.global_pool(self.features(x)))
