"""Our own ONNX writer, fed by the same model definition that MindSpore runs.

`ms.export(..., 'ONNX')` is stuck at opset 11, writes asymmetric depthwise pads in the wrong order and rejects
padded max pools, count-exclusive average pools and adaptive pooling (see PORTING_NOTES.md). Instead the
model's own `construct` runs in Python on `OnnxValue`s and each layer is lowered to its nodes by
porting.converters.onnx_ops, so the ONNX graph cannot drift from the MindSpore graph.

Nodes and initializers are named after the MindSpore cell they come from (`features.block1.rep.sep1.depthwise/
Conv`, `features.block1.rep.sep1.depthwise.weight`), so Netron and Polygraphy show where a node comes from.
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
    nodes: list = field(default_factory=list)  # (op_type, input names, output name, attributes); the node is
    initializers: dict = field(default_factory=dict)  # named after its output
    taps: dict = field(default_factory=dict)  # cell path -> the ONNX value that cell output
    scope: str = ""  # the cell whose construct is running (onnx_ops.trace sets it): the prefix of new names
    opset: int = OPSET  # the opset the graph is written for (a lowering may choose its nodes by it)
    _used: set = field(default_factory=set)

    def fresh(self, name: str) -> str:
        """`name`, or `name_2`, `name_3`... if taken."""
        unique, k = name, 1
        while unique in self._used:
            k += 1
            unique = f"{name}_{k}"
        self._used.add(unique)
        return unique

    def const(self, name: str, array: np.ndarray) -> str:
        """An initializer: `name` is the tensor's own ('stem.0.conv.weight'), or a leaf under the scope."""
        name = self.fresh(name if "." in name or not self.scope else f"{self.scope}/{name}")
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def op(self, op_type: str, inputs: list, **attrs) -> OnnxValue:
        names = [v.name if isinstance(v, OnnxValue) else v for v in inputs]
        out = self.fresh(f"{self.scope}/{op_type}" if self.scope else op_type)
        self.nodes.append((op_type, names, out, attrs))
        return OnnxValue(self, out)

    def fold_batchnorm(self, keep: set[str] = frozenset()) -> int:
        """Fold each BatchNormalization that reads a Conv's output (and nothing else reads it) into that Conv's
        weight and bias; the Conv keeps its node, value and initializer names and the BN's readers read the Conv.
        `keep`: values that must stay (taps, the graph's outputs). Returns how many were folded."""
        readers: dict[str, int] = {}
        for _, ins, _, _ in self.nodes:
            for name in ins:
                readers[name] = readers.get(name, 0) + 1
        producer = {out: i for i, (_, _, out, _) in enumerate(self.nodes)}
        folded, drop, renamed = 0, set(), {}
        for j, (op_type, ins, out, attrs) in enumerate(self.nodes):
            i = producer.get(ins[0]) if op_type == "BatchNormalization" else None
            if (i is None or self.nodes[i][0] != "Conv" or readers.get(ins[0]) != 1 or ins[0] in keep
                    or out in keep):
                continue
            gamma, beta, mean, var = (self.initializers[n].astype(np.float64) for n in ins[1:])
            scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            conv_type, conv_ins, _, conv_attrs = self.nodes[i]
            weight = self.initializers[conv_ins[1]].astype(np.float64)
            bias = self.initializers[conv_ins[2]].astype(np.float64) if len(conv_ins) > 2 else 0.0
            # the conv keeps its names: 'stem.0.conv.weight' now holds the folded kernel
            self.initializers[conv_ins[1]] = (weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
            bias_name = conv_ins[2] if len(conv_ins) > 2 else self.fresh(conv_ins[1].rsplit(".", 1)[0] + ".bias")
            self.initializers[bias_name] = ((bias - mean) * scale + beta).astype(np.float32)
            self.nodes[i] = (conv_type, [conv_ins[0], conv_ins[1], bias_name], ins[0], conv_attrs)
            renamed[out] = ins[0]
            drop.add(j)
            folded += 1
        self.nodes = [(t, [renamed.get(n, n) for n in ins], out, attrs)
                      for k, (t, ins, out, attrs) in enumerate(self.nodes) if k not in drop]
        self.taps = {cell: renamed.get(value, value) for cell, value in self.taps.items()}
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
        for op_type, ins, out, attrs in self.nodes:
            nodes.append(helper.make_node(op_type, [edge_in.get(n, edge_out.get(n, n)) for n in ins],
                                          [edge_out.get(out, out)], name=out, **attrs))
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
