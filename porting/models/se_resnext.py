"""SE-ResNeXt (Hu et al. 2018 on Xie et al. 2017) in MindSpore, configurable for how each source computes it.

One implementation covers timm `seresnext50_32x4d` (resnet.py), timm `legacy_seresnext50_32x4d` (senet.py,
the Cadene port), PaddleClas `SE_ResNeXt50_32x4d` and `SE_ResNeXt50_vd_32x4d`. They share the bottleneck
(1x1 -> grouped 3x3 carrying the stride -> 1x1, BN eps 1e-5, SE on the bn3 output before the residual add,
ReLU after the add) and differ in (PORTING_NOTES.md section 4, row 12):

- stem: one 7x7/2 conv (`stem=[64]`) or the vd deep stem of three 3x3 convs (`stem=[64, 64, 128]`);
- stem max pool: 3x3/2 padded by 1 (timm resnet.py, Paddle) or unpadded with ceil_mode (timm senet.py),
  which gives 56x56 instead of 55x55 from a 112x112 stem output;
- SE: 1x1 convs with bias (timm) or Dense layers (Paddle `squeeze`/`excitation`), reduction 16;
- shortcut of strided blocks: 1x1 conv with the stride (+BN), or (vd) AvgPool2d(2, 2, ceil_mode,
  padding excluded) then a 1x1 stride-1 conv (+BN).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field

from mindspore import nn

from porting.models.layers import (AvgPool2d, BatchNorm2d, Conv2d, Dense, GlobalAvgPool, MaxPool2d, ReLU,
                                   Sequential, SqueezeExcite, Traced)


@dataclass(frozen=True)
class SEResNeXtConfig:
    layers: list = field(default_factory=lambda: [3, 4, 6, 3])  # bottlenecks per stage
    cardinality: int = 32
    base_width: int = 4
    bn_eps: float = 1e-5
    stem: list = field(default_factory=lambda: [64])  # [64]: 7x7/2 conv; [64, 64, 128]: three 3x3 convs
    stem_pool_padding: int = 1  # stem max pool 3x3/2: padding ...
    stem_pool_ceil: bool = False  # ... and ceil_mode
    se_reduction: int = 16
    se_dense: bool = False  # SE with Dense layers instead of 1x1 convs
    avg_down: bool = False  # vd shortcut: AvgPool2d(2, 2, ceil_mode=True, exclusive) + 1x1 stride-1 conv

    def to_dict(self) -> dict:
        return asdict(self)


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
