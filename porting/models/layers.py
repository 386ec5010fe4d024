"""MindSpore building blocks shared by every architecture.

Each leaf layer is a thin subclass of the MindSpore layer (so parameter names stay the plain
`conv1.weight`, `bn1.gamma`...) that also knows (a) the ONNX nodes it stands for and (b) how to report its
output to a tap recorder, which the layer-by-layer parity check uses. Padding is explicit and named after the
source semantics: an int pads symmetrically (PyTorch / Paddle), 'same' is TensorFlow's asymmetric SAME
(extra row/column at the bottom/right), which MindSpore's pad_mode='same' and ONNX SAME_UPPER share.
"""
from __future__ import annotations

import contextlib

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from porting.converters.onnx_graph import OnnxValue

Padding = int | str  # int: symmetric zero pad (or -inf for max pools); 'same': TensorFlow SAME


class _Recorder:
    def __init__(self, names: dict[int, str], wanted: set[str] | None):
        self.names, self.wanted, self.outputs = names, wanted, {}


_RECORDER: _Recorder | None = None


@contextlib.contextmanager
def record_outputs(net: nn.Cell, wanted: list[str] | None = None):
    """Collect {cell name: output numpy} for the named cells (all traced cells if None) while running net."""
    global _RECORDER
    names = {id(cell): name for name, cell in net.cells_and_names() if name}
    previous, _RECORDER = _RECORDER, _Recorder(names, set(wanted) if wanted is not None else None)
    try:
        yield _RECORDER.outputs
    finally:
        _RECORDER = previous


class Traced:
    """Mixin for every cell here: ONNX tracing when called on an OnnxValue, and output taps."""

    def __call__(self, *args):
        if args and isinstance(args[0], OnnxValue):
            graph = args[0].graph
            out = self.onnx(*args) if hasattr(self, "onnx") else self.construct(*args)
            name = graph.names.get(id(self))
            if name:
                graph.taps[name] = out.name
            return out
        out = super().__call__(*args)
        rec = _RECORDER
        if rec is not None:
            name = rec.names.get(id(self))
            if name and (rec.wanted is None or name in rec.wanted):
                rec.outputs[name] = out.asnumpy()
        return out


def _pad_args(padding: Padding) -> dict:
    if padding == "same":
        return {"pad_mode": "same"}
    if padding == 0:
        return {"pad_mode": "valid"}
    return {"pad_mode": "pad", "padding": padding}


def _onnx_pads(padding: Padding) -> dict:
    if padding == "same":
        return {"auto_pad": "SAME_UPPER"}
    return {"pads": [padding] * 4}


class Conv2d(Traced, nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding: Padding = 0, dilation=1,
                 groups=1, bias=False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
                         group=groups, has_bias=bias, **_pad_args(padding))
        self.spec = dict(kernel=kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def onnx(self, x: OnnxValue) -> OnnxValue:
        g, s = x.graph, self.spec
        inputs = [x, g.const("W", self.weight.asnumpy())]
        if self.has_bias:
            inputs.append(g.const("B", self.bias.asnumpy()))
        k = s["kernel"]
        return g.op("Conv", inputs, kernel_shape=[k, k], strides=[s["stride"]] * 2,
                    dilations=[s["dilation"]] * 2, group=s["groups"], **_onnx_pads(s["padding"]))


class BatchNorm2d(Traced, nn.BatchNorm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.eps_value = eps

    def onnx(self, x: OnnxValue) -> OnnxValue:
        g = x.graph
        params = [self.gamma, self.beta, self.moving_mean, self.moving_variance]
        return g.op("BatchNormalization", [x] + [g.const("bn", p.asnumpy()) for p in params],
                    epsilon=float(self.eps_value))


class ReLU(Traced, nn.ReLU):
    def onnx(self, x):
        return x.graph.op("Relu", [x])


class MaxPool2d(Traced, nn.Cell):
    """Max pool; an int padding pads with -inf (never zeros: inputs can be negative)."""

    def __init__(self, kernel_size, stride, padding: Padding = 0, ceil_mode=False):
        super().__init__()
        self.spec = dict(kernel=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode)
        self.pool = nn.MaxPool2d(kernel_size, stride, ceil_mode=ceil_mode, **_pad_args(padding))

    def construct(self, x):
        return self.pool(x)

    def onnx(self, x):
        s = self.spec
        return x.graph.op("MaxPool", [x], kernel_shape=[s["kernel"]] * 2, strides=[s["stride"]] * 2,
                          ceil_mode=int(s["ceil_mode"]), **_onnx_pads(s["padding"]))


class GlobalAvgPool(Traced, nn.Cell):
    """Mean over H and W, flattened to [N, C]."""

    def construct(self, x):
        return ops.mean(x, (2, 3), False)

    def onnx(self, x):
        g = x.graph
        return g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)


class Dense(Traced, nn.Dense):
    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, has_bias=bias)

    def onnx(self, x):
        g = x.graph
        inputs = [x, g.const("W", self.weight.asnumpy())]
        if self.has_bias:
            inputs.append(g.const("B", self.bias.asnumpy()))
        return g.op("Gemm", inputs, transB=1)


class Sequential(Traced, nn.SequentialCell):
    def onnx(self, x):
        for cell in self.cell_list:
            x = cell(x)
        return x


class SeparableConv2d(Traced, nn.Cell):
    """Depthwise k x k then pointwise 1x1 (the Xception separable conv), no bias."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding: Padding = 1, dilation=1):
        super().__init__()
        self.depthwise = Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                                groups=in_channels)
        self.pointwise = Conv2d(in_channels, out_channels, 1)

    def construct(self, x):
        return self.pointwise(self.depthwise(x))


def init_head(net: nn.Cell, head: str, num_classes: int, seed: int = 0) -> None:
    """Re-initialise a Dense head for fine-tuning (truncated-normal-ish weights, zero bias)."""
    dense = dict(net.cells_and_names())[head]
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(num_classes, dense.in_channels)).clip(-0.02, 0.02)
    dense.weight.set_data(ms.Tensor(w.astype(np.float32)))
    if dense.has_bias:
        dense.bias.set_data(ms.Tensor(np.zeros(num_classes, np.float32)))
