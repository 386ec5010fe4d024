"""Our own ONNX writer, fed by the same model definition that MindSpore runs.

`ms.export(..., 'ONNX')` is stuck at opset 11, writes asymmetric depthwise pads in the wrong order and rejects
padded max pools, count-exclusive average pools and adaptive pooling (see PORTING_NOTES.md). Instead every
leaf layer in `porting.models.layers` knows the ONNX nodes it stands for. Calling the MindSpore model on an
`OnnxValue` runs the model's own `construct` in Python, and each leaf layer appends its nodes here, so the
ONNX graph cannot drift from the MindSpore graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OPSET = 17


@dataclass
class OnnxValue:
    """A symbolic tensor flowing through a model's construct during ONNX tracing."""

    graph: "GraphBuilder"
    name: str

    def __add__(self, other: "OnnxValue") -> "OnnxValue":
        return self.graph.op("Add", [self, other])

    __radd__ = __add__

    def __mul__(self, other: "OnnxValue") -> "OnnxValue":
        return self.graph.op("Mul", [self, other])


@dataclass
class GraphBuilder:
    nodes: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # cell id -> qualified cell name (set by the exporter)
    taps: dict = field(default_factory=dict)  # qualified cell name -> ONNX value name
    _counter: int = 0

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def op(self, op_type: str, inputs: list, hint: str | None = None, **attrs) -> OnnxValue:
        names = [v.name if isinstance(v, OnnxValue) else v for v in inputs]
        out = self.fresh(hint or op_type.lower())
        self.nodes.append((op_type, names, out, attrs))
        return OnnxValue(self, out)

    def to_model(self, inputs: dict[str, list], outputs: dict[str, tuple[OnnxValue, list]], extra_outputs=(),
                 metadata: dict[str, str] | None = None, graph_name: str = "porting"):
        """Build the ModelProto: inputs {name: shape}, outputs {name: (value, shape)}; str dims are dynamic.

        extra_outputs (debug taps for layer-by-layer parity) are declared with unknown shapes.
        """
        from onnx import TensorProto, helper, numpy_helper

        renames = {value.name: name for name, (value, _) in outputs.items()}
        nodes = []
        for i, (op_type, ins, out, attrs) in enumerate(self.nodes):
            nodes.append(helper.make_node(op_type, [renames.get(n, n) for n in ins], [renames.get(out, out)],
                                          name=f"{op_type}_{i}", **attrs))
        graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()]
        graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
                         for n, (_, shape) in outputs.items()]
        graph_outputs += [helper.make_tensor_value_info(renames.get(n, n), TensorProto.FLOAT, None)
                          for n in extra_outputs]
        inits = [numpy_helper.from_array(a.astype(np.float32) if a.dtype == np.float64 else a, n)
                 for n, a in self.initializers.items()]
        graph = helper.make_graph(nodes, graph_name, graph_inputs, graph_outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="porting")
        model.ir_version = 8
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        return model
