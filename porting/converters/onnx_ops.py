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

from porting.converters.onnx_graph import GraphBuilder, OnnxValue
from porting.archs import layers

LOWERINGS: dict[type, Callable] = {}


def lowering(*classes: type):
    """Register fn(cell, graph, path, *inputs) -> OnnxValue as the ONNX form of `classes`."""
    def register(fn):
        for cls in classes:
            LOWERINGS[cls] = fn
        return fn
    return register


def trace(net, input_name: str) -> tuple[GraphBuilder, OnnxValue]:
    """(graph, output value) of `net`; graph.taps holds every traced cell's output by cell path."""
    graph = GraphBuilder()
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
