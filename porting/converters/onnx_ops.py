"""The ONNX lowering of each layer, by layer class (as nobuco's `@converter(nn.Conv2d)`), and the tracer.

`trace(net, input_name)` runs the model's own `construct` in Python on an `OnnxValue`, with a hook installed at
porting.archs.layers' interception point: a call of a cell that has an `onnx(graph, path, *inputs)` method (a
layer a family adds, in its model.py) or whose class has a lowering here appends those nodes; any other cell (a block, ConvBnAct, the model itself) runs its own `construct`, whose calls come
back through the hook. Each cell's output value is recorded as its tap, by cell path, and every node and
initializer is named after the cell it comes from.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from porting.converters.onnx_graph import OPSET, GraphBuilder, OnnxValue
from porting.archs import layers

LOWERINGS: dict[type, Callable] = {}


def lowering(*classes: type):
    """Register fn(cell, graph, path, *inputs) -> OnnxValue as the ONNX form of `classes`."""
    def register(fn):
        for cls in classes:
            LOWERINGS[cls] = fn
        return fn
    return register


def trace(net, input_name: str, opset: int = OPSET) -> tuple[GraphBuilder, OnnxValue]:
    """(graph, output value) of `net` for `opset`; graph.taps holds every traced cell's output by cell path."""
    graph = GraphBuilder(opset=opset)
    paths = {id(cell): name for name, cell in net.cells_and_names()}

    def hook(cell, args, call):
        if not args or not isinstance(args[0], OnnxValue):
            return call()
        path, outer = paths.get(id(cell), ""), graph.scope
        graph.scope = path or outer
        try:
            if hasattr(cell, "onnx"):  # a family's own layer lowers itself: onnx(graph, path, *inputs)
                out = cell.onnx(graph, graph.scope, *args)
            else:
                lower = next((LOWERINGS[c] for c in type(cell).__mro__ if c in LOWERINGS), None)
                out = lower(cell, graph, graph.scope, *args) if lower else cell.construct(*args)
        finally:
            graph.scope = outer
        if path:
            graph.taps[path] = out.name
        return out

    with layers.intercept(hook):
        return graph, net(OnnxValue(graph, input_name))


def _weights(graph: GraphBuilder, path: str, cell) -> list[str]:
    names = [graph.const(f"{path}.weight", cell.weight.asnumpy())]
    if cell.has_bias:
        names.append(graph.const(f"{path}.bias", cell.bias.asnumpy()))
    return names


def _pads(padding) -> dict:
    """ONNX padding attributes: 'same' is TensorFlow SAME (ONNX SAME_UPPER); an int or (ph, pw) is symmetric
    (ONNX pads: [top, left, bottom, right])."""
    if padding == "same":
        return {"auto_pad": "SAME_UPPER"}
    ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
    return {"pads": [ph, pw, ph, pw]}


@lowering(layers.Conv2d)
def conv(cell, g, path, x):
    s = cell.spec
    k = s["kernel"]
    return g.op("Conv", [x, *_weights(g, path, cell)], kernel_shape=list(k) if isinstance(k, tuple) else [k, k],
                strides=[s["stride"]] * 2, dilations=[s["dilation"]] * 2, group=s["groups"], **_pads(s["padding"]))


@lowering(layers.BatchNorm2d, layers.BatchNorm1d)
def batchnorm(cell, g, path, x):
    params = [g.const(f"{path}.{p}", getattr(cell, p).asnumpy())
              for p in ("gamma", "beta", "moving_mean", "moving_variance")]
    return g.op("BatchNormalization", [x, *params], epsilon=float(cell.eps_value))


@lowering(layers.ReLU)
def relu(cell, g, path, x):
    return g.op("Relu", [x])


@lowering(layers.MaxPool2d)
def max_pool(cell, g, path, x):
    s = cell.spec
    return g.op("MaxPool", [x], kernel_shape=[s["kernel"]] * 2, strides=[s["stride"]] * 2,
                ceil_mode=int(s["ceil_mode"]), **_pads(s["padding"]))


@lowering(layers.AvgPool2d)
def avg_pool(cell, g, path, x):
    s = cell.spec
    return g.op("AveragePool", [x], kernel_shape=[s["kernel"]] * 2, strides=[s["stride"]] * 2,
                pads=[s["padding"]] * 4, ceil_mode=int(s["ceil_mode"]), count_include_pad=int(s["count_include_pad"]))


@lowering(layers.GlobalAvgPool)
def global_avg_pool(cell, g, path, x):
    return g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)


@lowering(layers.Dense)
def dense(cell, g, path, x):
    return g.op("Gemm", [x, *_weights(g, path, cell)], transB=1)


@lowering(layers.Sequential)
def sequential(cell, g, path, x):
    for child in cell.cell_list:
        x = child(x)
    return x


@lowering(layers.SqueezeExcite)
def squeeze_excite(cell, g, path, x):
    s = g.op("GlobalAveragePool", [x])
    if cell.dense:
        s = g.op("Flatten", [s], axis=1)
    s = g.op("Sigmoid", [cell.fc2(cell.act(cell.fc1(s)))])
    if cell.dense:
        s = g.op("Unsqueeze", [s, g.const("axes", np.array([2, 3], np.int64))])
    return g.op("Mul", [x, s])


@lowering(layers.Concat)
def concat(cell, g, path, *xs):
    return g.op("Concat", list(xs), axis=1)


# ------------------------------------------------------------------------------------------------- the user's head

@lowering(layers.GlobalMaxPool)
def global_max_pool(cell, g, path, x):
    return g.op("Flatten", [g.op("GlobalMaxPool", [x])], axis=1)


@lowering(layers.FlattenNHWC)
def flatten_nhwc(cell, g, path, x):
    return g.op("Flatten", [g.op("Transpose", [x], perm=[0, 2, 3, 1])], axis=1)


@lowering(layers.Identity, layers.HeadDropout)
def identity(cell, g, path, x):
    return x  # dropout is the identity at inference: no node


def activation(g, x, kind: str, alpha: float):
    """The nodes of one of porting.heads.ACTIVATIONS ('' none), as MindSpore computes it (layers.activate)."""
    if kind == "relu":
        return g.op("Relu", [x])
    if kind == "relu6":
        return g.op("Clip", [x, g.const("zero", np.array(0, np.float32)), g.const("six", np.array(6, np.float32))])
    if kind == "gelu":
        if g.opset >= 20:
            return g.op("Gelu", [x], approximate="none")
        # below opset 20, the exact GELU in its erf form: x * 0.5 * (1 + erf(x / sqrt(2)))
        erf = g.op("Erf", [g.op("Div", [x, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
        half = g.op("Mul", [x, g.const("half", np.array(0.5, np.float32))])
        return g.op("Mul", [half, g.op("Add", [erf, g.const("one", np.array(1, np.float32))])])
    if kind == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if kind == "sigmoid":
        return g.op("Sigmoid", [x])
    if kind == "tanh":
        return g.op("Tanh", [x])
    if kind == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if kind == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(alpha))
    if kind == "elu":
        return g.op("Elu", [x], alpha=float(alpha))
    return x


@lowering(layers.HeadDense)
def head_dense(cell, g, path, x):
    return activation(g, dense(cell, g, path, x), cell.activation, cell.alpha)


@lowering(layers.HeadActivation)
def head_activation(cell, g, path, x):
    return activation(g, x, cell.activation, cell.alpha)
