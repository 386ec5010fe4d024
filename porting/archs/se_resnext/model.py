"""SE-ResNeXt in MindSpore, configurable for how each source computes it (the variants: __init__.py)."""
from __future__ import annotations

from collections import OrderedDict

from mindspore import nn

from porting.archs.se_resnext import SEResNeXtConfig
from porting.archs.layers import (AvgPool2d, BatchNorm2d, Conv2d, Dense, GlobalAvgPool, MaxPool2d, ReLU,
                                   Sequential, SqueezeExcite, Traced)


class SEResNeXtBottleneck(Traced, nn.Cell):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, cfg: SEResNeXtConfig):
        super().__init__()
        width = (planes * cfg.base_width // 64) * cfg.cardinality
        cout = planes * self.expansion
        eps = cfg.bn_eps
        self.conv1, self.bn1, self.act1 = Conv2d(cin, width, 1), BatchNorm2d(width, eps), ReLU()
        self.conv2 = Conv2d(width, width, 3, stride, 1, groups=cfg.cardinality)
        self.bn2, self.act2 = BatchNorm2d(width, eps), ReLU()
        self.conv3, self.bn3 = Conv2d(width, cout, 1), BatchNorm2d(cout, eps)
        self.se = SqueezeExcite(cout, cout // cfg.se_reduction, dense=cfg.se_dense)
        self.has_downsample = stride != 1 or cin != cout
        if self.has_downsample:
            parts = []
            if cfg.avg_down and stride != 1:
                parts += [("pool", AvgPool2d(2, stride, 0, ceil_mode=True, count_include_pad=False)),
                          ("conv", Conv2d(cin, cout, 1))]
            else:
                parts += [("conv", Conv2d(cin, cout, 1, stride))]
            parts += [("bn", BatchNorm2d(cout, eps))]
            self.downsample = Sequential(OrderedDict(parts))
        self.act3 = ReLU()

    def construct(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        shortcut = self.downsample(x) if self.has_downsample else x
        return self.act3(out + shortcut)


class SEResNeXt(Traced, nn.Cell):
    def __init__(self, num_classes: int = 1000, cfg: SEResNeXtConfig = SEResNeXtConfig()):
        super().__init__()
        eps = cfg.bn_eps
        stem, cin = [], 3
        for i, width in enumerate(cfg.stem, 1):
            big = len(cfg.stem) == 1
            stem += [(f"conv{i}", Conv2d(cin, width, 7 if big else 3, 2 if i == 1 else 1, 3 if big else 1)),
                     (f"bn{i}", BatchNorm2d(width, eps)), (f"act{i}", ReLU())]
            cin = width
        self.stem = Sequential(OrderedDict(stem))
        self.pool = MaxPool2d(3, 2, cfg.stem_pool_padding, ceil_mode=cfg.stem_pool_ceil)
        stages = []
        for s, depth in enumerate(cfg.layers):
            planes = 64 * 2 ** s
            blocks = []
            for b in range(depth):
                blocks.append(SEResNeXtBottleneck(cin, planes, 2 if b == 0 and s > 0 else 1, cfg))
                cin = planes * SEResNeXtBottleneck.expansion
            stages.append(Sequential(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.global_pool = GlobalAvgPool()
        self.fc = Dense(cin, num_classes)
        self.num_classes = num_classes

    def construct(self, x):
        x = self.pool(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.global_pool(x))
