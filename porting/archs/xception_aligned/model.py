"""Aligned Xception in MindSpore, one configurable implementation (the variants: __init__.py)."""
from __future__ import annotations

from collections import OrderedDict

from mindspore import nn

from porting.archs.xception_aligned import BlockSpec, XceptionAlignedConfig, block_specs
from porting.archs.layers import (BatchNorm2d, Conv2d, ConvBnAct, Dense, GlobalAvgPool, ReLU,
                                   SeparableConvBnAct, Sequential, Traced)


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
