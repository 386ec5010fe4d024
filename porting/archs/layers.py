"""MindSpore building blocks shared by every architecture.

Each leaf layer is a thin subclass of the MindSpore layer (so parameter names stay the plain
`conv1.weight`, `bn1.gamma`...). Every cell here is `Traced`: while a hook is installed with `intercept`, each
call of a cell goes through it. That one interception point serves whoever needs to see the model cell by
cell: the parity check's output taps (porting.runtimes.mindspore_runtime) and the ONNX writer, which lowers each layer to
its nodes (porting.converters.onnx_ops) and runs the model's own `construct` for the rest. This module knows
nothing of either. Padding is explicit and named after the source semantics: an int pads symmetrically
(PyTorch / Paddle), 'same' is TensorFlow's asymmetric SAME (extra row/column at the bottom/right), which
MindSpore's pad_mode='same' and ONNX SAME_UPPER share.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import mindspore as ms
import numpy as np
from mindspore import nn, ops

Padding = int | str  # int: symmetric zero pad (or -inf for max pools); 'same': TensorFlow SAME

# hook(cell, args, call) -> the cell's output; `call()` runs the cell as MindSpore would
Hook = Callable[[nn.Cell, tuple, Callable[[], object]], object]
_HOOK: Hook | None = None


@contextlib.contextmanager
def intercept(hook: Hook):
    """Route every call of a Traced cell through `hook` inside the block (no hook: plain MindSpore calls)."""
    global _HOOK
    previous, _HOOK = _HOOK, hook
    try:
        yield
    finally:
        _HOOK = previous


class Traced:
    """Mixin for every cell here: its calls go through the installed hook, if any (see `intercept`)."""

    def __call__(self, *args):
        hook = _HOOK
        if hook is None:
            return super().__call__(*args)
        return hook(self, args, functools.partial(super().__call__, *args))


def _pad_args(padding: Padding) -> dict:
    if padding == "same":
        return {"pad_mode": "same"}
    if padding == 0:
        return {"pad_mode": "valid"}
    return {"pad_mode": "pad", "padding": padding}


class Conv2d(Traced, nn.Conv2d):
    """kernel_size may also be (kh, kw) and padding (ph, pw), symmetric per axis, for non-square kernels
    (Inception's 1x7 / 7x1); int kernels and paddings behave exactly as before."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding: Padding = 0, dilation=1,
                 groups=1, bias=False):
        if isinstance(kernel_size, (tuple, list)):
            kernel_size = tuple(int(k) for k in kernel_size)
        if isinstance(padding, (tuple, list)):  # (ph, pw) -> MindSpore (top, bottom, left, right)
            ph, pw = (int(p) for p in padding)
            pad = {"pad_mode": "pad", "padding": (ph, ph, pw, pw)} if ph or pw else {"pad_mode": "valid"}
            padding = (ph, pw)
        else:
            pad = _pad_args(padding)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
                         group=groups, has_bias=bias, **pad)
        self.spec = dict(kernel=kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups)


class BatchNorm2d(Traced, nn.BatchNorm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.eps_value = eps


class BatchNorm1d(Traced, nn.BatchNorm1d):
    """BN over [N, C] (the model zoo InceptionV4's `bn0` on the pooled features)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.eps_value = eps


class ReLU(Traced, nn.ReLU):
    pass


def pool_windows(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> tuple[bool, int, int]:
    """Where a symmetrically padded pool (PyTorch / Paddle semantics) puts its windows along one axis:
    (TensorFlow SAME puts them at exactly those places, padding before, padding the last window reaches)."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # PyTorch: the last window starts inside
        out -= 1
    after = max(0, (out - 1) * stride + kernel - size - padding)
    same_out = -(-size // stride)
    same = same_out == out and max(0, (same_out - 1) * stride + kernel - size) // 2 == padding
    return same, padding, after


class MaxPool2d(Traced, nn.Cell):
    """Max pool; an int padding pads with -inf (never zeros: inputs can be negative).

    MindSpore's padded max pool (pad_mode='pad') is 4-8x slower on CPU than its 'same' and 'valid' pools, so
    the windows are placed per input size (pool_windows): by 'same' where TensorFlow SAME puts them exactly
    where the padded pool would (odd sizes for 3x3/2 padded by 1), otherwise by concatenating the rows and
    columns of -inf the windows reach and pooling 'valid'. Same windows over the same values: exact.
    """

    def __init__(self, kernel_size, stride, padding: Padding = 0, ceil_mode=False):
        super().__init__()
        self.spec = dict(kernel=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode)
        self.same = nn.MaxPool2d(kernel_size, stride, pad_mode="same")
        self.valid = nn.MaxPool2d(kernel_size, stride, pad_mode="valid")

    def construct(self, x):
        s = self.spec
        if s["padding"] == "same":
            return self.same(x)
        rows = pool_windows(x.shape[2], s["kernel"], s["stride"], s["padding"], s["ceil_mode"])
        cols = pool_windows(x.shape[3], s["kernel"], s["stride"], s["padding"], s["ceil_mode"])
        if rows[0] and cols[0]:
            return self.same(x)
        return self.valid(_neg_inf_pad(_neg_inf_pad(x, rows[1], rows[2], 2), cols[1], cols[2], 3))


def _neg_inf_pad(x, before: int, after: int, axis: int):
    """x with `before` and `after` slices of -inf along `axis`: a concat (MindSpore's pad op is far slower).
    Tuples only: list methods here would push MindSpore's graph compiler onto its slow interpreted path."""
    if before == 0 and after == 0:
        return x
    shape = x.shape
    lead, trail = shape[:axis], shape[axis + 1:]
    if after == 0:
        return ops.concat((ops.full(lead + (before,) + trail, float("-inf"), dtype=x.dtype), x), axis)
    tail = ops.full(lead + (after,) + trail, float("-inf"), dtype=x.dtype)
    if before == 0:
        return ops.concat((x, tail), axis)
    return ops.concat((ops.full(lead + (before,) + trail, float("-inf"), dtype=x.dtype), x, tail), axis)


def spatial_mean(x, keep_dims: bool):
    """Mean over H and W: an average pool whose window is the whole map. MindSpore's CPU ReduceMean over (2, 3)
    is 4-10x slower for the same sums (fp32 rounding differs by ~1e-6, far inside parity's tolerance)."""
    pooled = ops.AvgPool(kernel_size=x.shape[2:], strides=1, pad_mode="VALID")(x)
    return pooled if keep_dims else pooled.reshape(x.shape[:2])


class GlobalAvgPool(Traced, nn.Cell):
    """Mean over H and W, flattened to [N, C]."""

    def construct(self, x):
        return spatial_mean(x, False)


class Dense(Traced, nn.Dense):
    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__(in_channels, out_channels, has_bias=bias)


class Sequential(Traced, nn.SequentialCell):
    pass


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
    """Re-initialise a Dense head for fine-tuning (truncated-normal-ish weights, zero bias); a BN inside the head
    starts as the identity (gamma 1, beta 0, mean 0, variance 1)."""
    dense = dict(net.cells_and_names())[head]
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(num_classes, dense.in_channels)).clip(-0.02, 0.02)
    dense.weight.set_data(ms.Tensor(w.astype(np.float32)))
    if dense.has_bias:
        dense.bias.set_data(ms.Tensor(np.zeros(num_classes, np.float32)))
    for _, cell in dense.cells_and_names():
        if isinstance(cell, nn.BatchNorm1d):
            for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
                getattr(cell, name).set_data(ms.Tensor(np.full(num_classes, value, np.float32)))


class AvgPool2d(Traced, nn.Cell):
    """Average pool with symmetric int padding. count_include_pad=False divides each window by the number of
    real input elements it covers (timm count_include_pad=False, Paddle exclusive=True), which also holds
    for the partial last window of ceil_mode=True. Checked against PyTorch in MindSpore and onnxruntime."""

    def __init__(self, kernel_size, stride, padding: int = 0, ceil_mode=False, count_include_pad=False):
        super().__init__()
        if not isinstance(padding, int):
            raise ValueError(f"AvgPool2d takes an int padding, got {padding!r}")
        self.spec = dict(kernel=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad)
        self.pool = nn.AvgPool2d(kernel_size, stride, pad_mode="pad", padding=padding, ceil_mode=ceil_mode,
                                 count_include_pad=count_include_pad)

    def construct(self, x):
        return self.pool(x)


class SqueezeExcite(Traced, nn.Cell):
    """x * sigmoid(fc2(relu(fc1(mean over H, W of x)))), fc1/fc2 with bias.

    dense=False: fc1/fc2 are 1x1 convs on [N, C, 1, 1] (timm SEModule, weights [r, C, 1, 1]);
    dense=True: Dense layers on [N, C] (PaddleClas SELayer squeeze/excitation, mindcv), weights [r, C].
    """

    def __init__(self, channels: int, reduced: int, dense: bool = False):
        super().__init__()
        self.dense = dense
        if dense:
            self.fc1, self.fc2 = Dense(channels, reduced), Dense(reduced, channels)
        else:
            self.fc1 = Conv2d(channels, reduced, 1, bias=True)
            self.fc2 = Conv2d(reduced, channels, 1, bias=True)
        self.act = ReLU()
        self.sigmoid = ops.Sigmoid()

    def construct(self, x):
        if self.dense:
            s = self.sigmoid(self.fc2(self.act(self.fc1(spatial_mean(x, False)))))
            return x * ops.expand_dims(ops.expand_dims(s, 2), 3)
        return x * self.sigmoid(self.fc2(self.act(self.fc1(spatial_mean(x, True)))))


class ConvBnAct(Traced, nn.Cell):
    """Conv2d (no bias) -> BatchNorm -> optional ReLU: timm `ConvNormAct`, Paddle `ConvBNLayer(act=...)`.

    Cells `conv`, `bn` and (with act) `act`, so a tap on `act` is the post-activation output that timm's
    BatchNormAct2d and Paddle's BatchNorm(act='relu') report.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding: Padding = 0, dilation=1,
                 groups=1, eps=1e-5, act=True):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.bn = BatchNorm2d(out_channels, eps)
        self.use_act = act
        if act:
            self.act = ReLU()

    def construct(self, x):
        x = self.bn(self.conv(x))
        if self.use_act:
            x = self.act(x)
        return x


class SeparableConvBnAct(Traced, nn.Cell):
    """Depthwise k x k -> BN -> [ReLU] -> pointwise 1x1 -> BN -> [ReLU], no conv bias (DeepLab-style).

    timm aligned Xception `SeparableConv2d` and Paddle xception_deeplab `Seperate_Conv`. Cells `conv_dw`,
    `bn_dw`, `act_dw`, `conv_pw`, `bn_pw`, `act_pw` (the acts only with act=True).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding: Padding = 1, dilation=1,
                 eps=1e-5, act=False):
        super().__init__()
        self.conv_dw = Conv2d(in_channels, in_channels, kernel_size, stride, padding, dilation,
                              groups=in_channels)
        self.bn_dw = BatchNorm2d(in_channels, eps)
        self.conv_pw = Conv2d(in_channels, out_channels, 1)
        self.bn_pw = BatchNorm2d(out_channels, eps)
        self.use_act = act
        if act:
            self.act_dw = ReLU()
            self.act_pw = ReLU()

    def construct(self, x):
        x = self.bn_dw(self.conv_dw(x))
        if self.use_act:
            x = self.act_dw(x)
        x = self.bn_pw(self.conv_pw(x))
        if self.use_act:
            x = self.act_pw(x)
        return x


class Concat(Traced, nn.Cell):
    """Concatenation along channels (axis 1) of the tensors it is called with, in that order."""

    def construct(self, *xs):
        return ops.concat(xs, 1)


# ------------------------------------------------------------------------------------------------- the user's head
# A custom head (porting.heads.Head: the user's pooling, then dense / 1-d BN / activation / dropout layers) replaces
# a model's `global_pool` and classifier cells (archs.build(..., head=)); each cell here is Traced and has an ONNX
# lowering (porting.converters.onnx_ops).


def activate(x, kind: str, alpha: float = 0.0, log_softmax: bool = False):
    """One of porting.heads.ACTIVATIONS ('' is none) on x; softmax over the last axis (log_softmax: its log)."""
    if kind == "relu":
        return ops.relu(x)
    if kind == "relu6":
        return ops.relu6(x)
    if kind == "gelu":
        return ops.gelu(x, approximate="none")  # the exact, erf form (Keras's, PyTorch's and Paddle's default)
    if kind == "silu":
        return x * ops.sigmoid(x)
    if kind == "sigmoid":
        return ops.sigmoid(x)
    if kind == "tanh":
        return ops.tanh(x)
    if kind == "softmax":
        return ops.log_softmax(x, -1) if log_softmax else ops.softmax(x, -1)
    if kind == "leaky_relu":
        return ops.leaky_relu(x, alpha)
    if kind == "elu":
        return ops.where(x > 0, x, alpha * ops.expm1(x))
    return x


class GlobalMaxPool(Traced, nn.Cell):
    """Max over H and W, flattened to [N, C] (Keras GlobalMaxPooling2D, --head pool:max)."""

    def construct(self, x):
        return ops.amax(x, (2, 3))


class FlattenNHWC(Traced, nn.Cell):
    """[N, C, H, W] -> [N, H x W x C], flattened in Keras's channels-last order, so the next Dense's kernel is the
    source's as it is (Keras Flatten on a map of fixed size: `map_size`)."""

    def __init__(self, map_size: tuple[int, int]):
        super().__init__()
        self.map_size = tuple(map_size)

    def construct(self, x):
        return ops.transpose(x, (0, 2, 3, 1)).reshape((x.shape[0], -1))


class Identity(Traced, nn.Cell):
    """No pooling (a feature extractor's last feature map), or no classifier."""

    def construct(self, x):
        return x


class HeadDense(Dense):
    """A head's dense layer, with the activation the source fuses into it where it does (Keras Dense(activation=)):
    one cell, whose output is the source layer's."""

    def __init__(self, in_channels, out_channels, bias=True, activation: str = "", alpha: float = 0.0):
        super().__init__(in_channels, out_channels, bias)
        self.activation, self.alpha, self.log_softmax = activation, alpha, False

    def construct(self, x):
        return activate(super().construct(x), self.activation, self.alpha, self.log_softmax)


class HeadActivation(Traced, nn.Cell):
    def __init__(self, activation: str, alpha: float = 0.0):
        super().__init__()
        self.activation, self.alpha, self.log_softmax = activation, alpha, False

    def construct(self, x):
        return activate(x, self.activation, self.alpha, self.log_softmax)


class HeadDropout(Traced, nn.Dropout):
    """Dropout: the identity at inference; in training MindSpore's dropout kernel draws the masks (its state is not
    in a checkpoint, so a resumed run draws other masks than the run it continues would have)."""

    def __init__(self, rate: float):
        super().__init__(p=float(rate))
        self.rate = float(rate)


class HeadStack(Sequential):
    """The layers of a porting.heads.Head, numbered as Head.layers (and as timm's nn.Sequential numbers them):
    parameters `fc.0.weight`, `fc.3.bias`, `fc.1.gamma`..."""

    def __init__(self, head, in_features: int):
        cells = []
        for layer, width in zip(head.layers, head.widths()):
            if layer.kind == "dense":
                cells.append(HeadDense(width, layer.units, layer.bias, layer.activation, layer.alpha))
            elif layer.kind == "batchnorm":
                cells.append(BatchNorm1d(width, layer.eps, layer.momentum))
            elif layer.kind == "activation":
                cells.append(HeadActivation(layer.activation, layer.alpha))
            else:
                cells.append(HeadDropout(layer.rate))
        super().__init__(cells)
        self.in_features = in_features

    def log_probabilities(self) -> bool:
        """Make a softmax that ends the head give its log (what a cross entropy on logits takes: the softmax of
        log-probabilities is the probabilities again); False where the head does not end in a softmax."""
        for cell in reversed(list(self.cell_list)):
            if isinstance(cell, HeadDropout):
                continue
            if getattr(cell, "activation", "") == "softmax":
                cell.log_softmax = True
                return True
            return False
        return False


def head_cells(head) -> tuple[nn.Cell, nn.Cell]:
    """(pooling cell, classifier cell) of a porting.heads.Head: the classifier a HeadStack, or the identity for a
    head without layers."""
    return head_pool(head), HeadStack(head, head.pooled) if head.layers else Identity()


def head_pool(head) -> nn.Cell:
    """The pooling cell of a porting.heads.Head."""
    if head.pooling == "avg":
        return GlobalAvgPool()
    if head.pooling == "max":
        return GlobalMaxPool()
    if head.pooling == "flatten":
        return FlattenNHWC(head.map_size)
    return Identity()

