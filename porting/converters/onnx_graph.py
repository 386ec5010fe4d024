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

    def fold_batchnorm(self, keep: set[str] = frozenset()) -> int:
        """Fold each BatchNormalization that reads a Conv's output (and nothing else reads it) into that Conv's
        weight and bias. `keep`: values that must stay (taps). Returns how many were folded."""
        readers: dict[str, int] = {}
        for _, ins, _, _ in self.nodes:
            for name in ins:
                readers[name] = readers.get(name, 0) + 1
        producer = {out: i for i, (_, _, out, _) in enumerate(self.nodes)}
        folded, drop = 0, set()
        for j, (op_type, ins, out, attrs) in enumerate(self.nodes):
            i = producer.get(ins[0]) if op_type == "BatchNormalization" else None
            if i is None or self.nodes[i][0] != "Conv" or readers.get(ins[0]) != 1 or ins[0] in keep:
                continue
            gamma, beta, mean, var = (self.initializers[n].astype(np.float64) for n in ins[1:])
            scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            conv_type, conv_ins, _, conv_attrs = self.nodes[i]
            weight = self.initializers[conv_ins[1]].astype(np.float64)
            bias = self.initializers[conv_ins[2]].astype(np.float64) if len(conv_ins) > 2 else 0.0
            new_w = self.const("W", (weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32))
            new_b = self.const("B", ((bias - mean) * scale + beta).astype(np.float32))
            self.nodes[i] = (conv_type, [conv_ins[0], new_w, new_b], out, conv_attrs)
            drop.add(j)
            folded += 1
        self.nodes = [n for k, n in enumerate(self.nodes) if k not in drop]
        used = {name for _, ins, _, _ in self.nodes for name in ins}
        self.initializers = {k: v for k, v in self.initializers.items() if k in used}
        return folded

    def to_model(self, inputs: dict[str, list], outputs: dict[str, tuple[OnnxValue, list]], extra_outputs=(),
                 metadata: dict[str, str] | None = None, graph_name: str = "porting", opset: int = OPSET,
                 float16: bool = False, producer_version: str = ""):
        """Build the ModelProto: inputs {name: shape}, outputs {name: (value, shape)}; str dims are dynamic.

        extra_outputs (debug taps for layer-by-layer parity) are declared with unknown shapes. float16: weights
        and computation in float16, with the float32 input and outputs cast at the graph's edges.
        """
        from onnx import TensorProto, helper, numpy_helper

        renames = {value.name: name for name, (value, _) in outputs.items()}
        nodes = []
        if float16:  # the graph reads '<input>_fp16' and writes '<output>_fp16'; Casts join them to the float32 edges
            for name in inputs:
                nodes.append(helper.make_node("Cast", [name], [f"{name}_fp16"], name=f"Cast_{name}",
                                              to=TensorProto.FLOAT16))
        edge_in = {name: f"{name}_fp16" for name in inputs} if float16 else {}
        edge_out = {v: f"{n}_fp16" for v, n in renames.items()} if float16 else renames
        for i, (op_type, ins, out, attrs) in enumerate(self.nodes):
            nodes.append(helper.make_node(op_type, [edge_in.get(n, edge_out.get(n, n)) for n in ins],
                                          [edge_out.get(out, out)], name=f"{op_type}_{i}", **attrs))
        if float16:
            for value, name in renames.items():
                nodes.append(helper.make_node("Cast", [f"{name}_fp16"], [name], name=f"Cast_{name}",
                                              to=TensorProto.FLOAT))
        graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()]
        graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
                         for n, (_, shape) in outputs.items()]
        graph_outputs += [helper.make_tensor_value_info(renames.get(n, n),
                                                        TensorProto.FLOAT16 if float16 else TensorProto.FLOAT, None)
                          for n in extra_outputs]
        inits = []
        for n, a in self.initializers.items():
            if a.dtype.kind == "f":
                a = a.astype(np.float16 if float16 else np.float32)
            inits.append(numpy_helper.from_array(a, n))
        graph = helper.make_graph(nodes, graph_name, graph_inputs, graph_outputs, inits)
        opsets = [helper.make_opsetid("", opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="porting",
                                  producer_version=producer_version)
        model.ir_version = helper.find_min_ir_version_for(opsets)  # opset 17: IR 8, opset 21: IR 10
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        return model
