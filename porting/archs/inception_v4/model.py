"""Inception-v4 in MindSpore, configurable for how each source computes it (the variants: __init__.py).

Cell names follow timm (timm/models/inception_v4.py): `features.0`..`features.21`, branches `branch0`..,
each conv a ConvBnAct (`conv`, `bn`, `act`).
"""
from __future__ import annotations

from collections import OrderedDict

from mindspore import nn

from porting.archs.inception_v4 import InceptionV4Config
from porting.archs.layers import (AvgPool2d, BatchNorm1d, Concat, ConvBnAct, Dense, GlobalAvgPool,
                                  MaxPool2d, Sequential, Traced)


def _factor(n: int, vertical: bool):
    """(kernel, padding) of an n x 1 (vertical) or 1 x n conv that keeps the spatial size."""
    return ((n, 1), (n // 2, 0)) if vertical else ((1, n), (0, n // 2))



class DenseBnLogSoftmax(Dense):
    """Dense -> BatchNorm1d over the classes -> log-softmax: MindSpore's `nn.DenseBnAct(has_bn=True,
    activation='logsoftmax')`, the model zoo InceptionV4's classifier. The Dense's own tensors keep their plain
    names (`fc.weight`, `fc.bias`), the BN is `fc.bn`. Log-softmax keeps the top-k, and softmax cross entropy on
    its output equals that on the logits (log-softmax is idempotent), so training and evaluation read it as logits."""

    def __init__(self, in_channels, out_channels, bn_eps=1e-5):
        super().__init__(in_channels, out_channels)
        self.bn = BatchNorm1d(out_channels, bn_eps)
        self.log_softmax = nn.LogSoftmax(axis=1)

    def construct(self, x):
        return self.log_softmax(self.bn(super().construct(x)))

    def onnx(self, g, path, x):
        """Its ONNX form (porting.converters.onnx_ops's tracer calls a cell's own `onnx` first): Gemm, the BN
        through the tracer (its output is a tap), LogSoftmax."""
        weights = [g.const(f"{path}.weight", self.weight.asnumpy())]
        if self.has_bias:
            weights.append(g.const(f"{path}.bias", self.bias.asnumpy()))
        return g.op("LogSoftmax", [self.bn(g.op("Gemm", [x, *weights], transB=1))], axis=1)

class _Block(Traced, nn.Cell):
    def __init__(self, cfg: InceptionV4Config):
        super().__init__()
        self.eps = cfg.bn_eps
        self.pool_first = cfg.pool_branch_first
        self.swap = cfg.swap_factorized
        self.cat = Concat()

    def cba(self, cin, cout, kernel, stride=1, padding=0):
        return ConvBnAct(cin, cout, kernel, stride, padding, eps=self.eps)

    def factor(self, cin, cout, n, vertical):
        """One conv of a factorized stack: timm's n x 1 (vertical) or 1 x n, the other shape if swapped."""
        kernel, padding = _factor(n, vertical != self.swap)
        return self.cba(cin, cout, kernel, 1, padding)

    def join(self, pool, *convs):
        """Concat the conv branches and the pool branch in the source's order (Paddle: pool first)."""
        if self.pool_first:
            return self.cat(pool, *convs)
        return self.cat(*convs, pool)

    def seq(self, *cells):
        return Sequential(OrderedDict((str(i), c) for i, c in enumerate(cells)))


class Mixed3a(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.maxpool = MaxPool2d(3, 2)
        self.conv = self.cba(64, 96, 3, 2)

    def construct(self, x):
        return self.cat(self.maxpool(x), self.conv(x))


class Mixed4a(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.seq(self.cba(160, 64, 1), self.cba(64, 96, 3))
        self.branch1 = self.seq(self.cba(160, 64, 1), self.factor(64, 64, 7, False), self.factor(64, 64, 7, True),
                                self.cba(64, 96, 3))

    def construct(self, x):
        return self.cat(self.branch0(x), self.branch1(x))


class Mixed5a(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.conv = self.cba(192, 192, 3, 2)
        self.maxpool = MaxPool2d(3, 2)

    def construct(self, x):
        return self.cat(self.conv(x), self.maxpool(x))


class InceptionA(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.cba(384, 96, 1)
        self.branch1 = self.seq(self.cba(384, 64, 1), self.cba(64, 96, 3, 1, 1))
        self.branch2 = self.seq(self.cba(384, 64, 1), self.cba(64, 96, 3, 1, 1), self.cba(96, 96, 3, 1, 1))
        self.branch3 = self.seq(AvgPool2d(3, 1, 1, count_include_pad=False), self.cba(384, 96, 1))

    def construct(self, x):
        x0, x1, x2, x3 = self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)
        return self.join(x3, x0, x1, x2)


class ReductionA(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.cba(384, 384, 3, 2)
        self.branch1 = self.seq(self.cba(384, 192, 1), self.cba(192, 224, 3, 1, 1), self.cba(224, 256, 3, 2))
        self.branch2 = MaxPool2d(3, 2)

    def construct(self, x):
        x0, x1, x2 = self.branch0(x), self.branch1(x), self.branch2(x)
        return self.join(x2, x0, x1)


class InceptionB(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.cba(1024, 384, 1)
        # 1x7 then 7x1 in both sources
        self.branch1 = self.seq(self.cba(1024, 192, 1), self.cba(192, 224, (1, 7), 1, (0, 3)),
                                self.cba(224, 256, (7, 1), 1, (3, 0)))
        self.branch2 = self.seq(self.cba(1024, 192, 1), self.factor(192, 192, 7, True),
                                self.factor(192, 224, 7, False), self.factor(224, 224, 7, True),
                                self.factor(224, 256, 7, False))
        self.branch3 = self.seq(AvgPool2d(3, 1, 1, count_include_pad=False), self.cba(1024, 128, 1))

    def construct(self, x):
        x0, x1, x2, x3 = self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)
        return self.join(x3, x0, x1, x2)


class ReductionB(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.seq(self.cba(1024, 192, 1), self.cba(192, 192, 3, 2))
        # 1x7 then 7x1 in both sources
        self.branch1 = self.seq(self.cba(1024, 256, 1), self.cba(256, 256, (1, 7), 1, (0, 3)),
                                self.cba(256, 320, (7, 1), 1, (3, 0)), self.cba(320, 320, 3, 2))
        self.branch2 = MaxPool2d(3, 2)

    def construct(self, x):
        x0, x1, x2 = self.branch0(x), self.branch1(x), self.branch2(x)
        return self.join(x2, x0, x1)


class InceptionC(_Block):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.branch0 = self.cba(1536, 256, 1)
        self.branch1_0 = self.cba(1536, 384, 1)
        self.branch1_1a = self.cba(384, 256, (1, 3), 1, (0, 1))
        self.branch1_1b = self.cba(384, 256, (3, 1), 1, (1, 0))
        self.branch2_0 = self.cba(1536, 384, 1)
        self.branch2_1 = self.factor(384, 448, 3, True)
        self.branch2_2 = self.factor(448, 512, 3, False)
        self.branch2_3a = self.cba(512, 256, (1, 3), 1, (0, 1))
        self.branch2_3b = self.cba(512, 256, (3, 1), 1, (1, 0))
        self.branch3 = self.seq(AvgPool2d(3, 1, 1, count_include_pad=False), self.cba(1536, 256, 1))

    def construct(self, x):
        x0 = self.branch0(x)
        x1 = self.branch1_0(x)
        x1a, x1b = self.branch1_1a(x1), self.branch1_1b(x1)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        x2a, x2b = self.branch2_3a(x2), self.branch2_3b(x2)
        x3 = self.branch3(x)
        return self.join(x3, x0, x1a, x1b, x2a, x2b)


class InceptionV4(Traced, nn.Cell):
    def __init__(self, num_classes: int = 1000, cfg: InceptionV4Config = InceptionV4Config()):
        super().__init__()
        eps = cfg.bn_eps
        stages = [
            ConvBnAct(3, 32, 3, 2, 0, eps=eps), ConvBnAct(32, 32, 3, 1, 0, eps=eps),
            ConvBnAct(32, 64, 3, 1, 1, eps=eps), Mixed3a(cfg), Mixed4a(cfg), Mixed5a(cfg),
            *[InceptionA(cfg) for _ in range(4)], ReductionA(cfg),
            *[InceptionB(cfg) for _ in range(7)], ReductionB(cfg),
            *[InceptionC(cfg) for _ in range(3)],
        ]
        self.features = Sequential(OrderedDict((str(i), c) for i, c in enumerate(stages)))
        self.global_pool = GlobalAvgPool()
        self.head_bn = cfg.head_bn
        if cfg.head_bn:
            self.bn0 = BatchNorm1d(1536, 1e-3)  # nn.BatchNorm1d(1536, eps=0.001) in the model zoo
            self.fc = DenseBnLogSoftmax(1536, num_classes, 1e-5)  # nn.DenseBnAct's BN: MindSpore's default eps
        else:
            self.fc = Dense(1536, num_classes)
        self.num_classes = num_classes

    def construct(self, x):
        x = self.global_pool(self.features(x))
        if self.head_bn:
            x = self.bn0(x)
        return self.fc(x)
