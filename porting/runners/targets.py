"""Target runners: the ported model in each runtime behind one call, as Polygraphy's runners.

`runner.infer(x, taps)` runs a normalised NCHW float32 batch and returns {cell path: output, 'logits': logits}
for the MindSpore cells named in `taps` that the runtime can show. parity builds the network once, then asks
each runner in turn; the comparator never learns which framework answered.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

LOGITS = "logits"


class MindSporeRunner:
    """The network itself (PYNATIVE), every tapped cell's output read at porting.archs.layers' interception
    point."""

    name = "mindspore"
    description = "the ported MindSpore model"

    def __init__(self, net):
        self.net = net
        self.paths = {id(cell): name for name, cell in net.cells_and_names() if name}

    def infer(self, x: np.ndarray, taps: list[str]) -> dict[str, np.ndarray]:
        import mindspore as ms

        from porting.archs.layers import intercept

        wanted, outputs = set(taps), {}

        def record(cell, args, call):
            out = call()
            name = self.paths.get(id(cell))
            if name in wanted:
                outputs[name] = out.asnumpy()
            return out

        with intercept(record):
            logits = self.net(ms.Tensor(x)).asnumpy()
        return {**outputs, LOGITS: logits}


class OnnxRunner:
    """porting's ONNX export in onnxruntime. The graph is traced once, with the tapped cells as extra outputs;
    the export file (checked by onnx.checker, written to `path`) is that same graph with the logits as its only
    output, and one onnxruntime session runs the tapped graph, so the file's nodes are the ones compared."""

    name = "onnx"
    description = "the ONNX export in onnxruntime"

    def __init__(self, net, metadata: dict, size: int, path: str | Path):
        self.net, self.metadata, self.size, self.path = net, metadata, size, Path(path)
        self._session, self._taps = None, None

    def _prepare(self, taps: list[str]) -> None:
        import onnxruntime as ort

        from porting.converters.export import trace_onnx, without_extra_outputs, write_onnx

        model, self._taps = trace_onnx(self.net, self.metadata, self.size, taps)
        write_onnx(without_extra_outputs(model), self.path)
        self._session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def infer(self, x: np.ndarray, taps: list[str]) -> dict[str, np.ndarray]:
        if self._session is None:
            self._prepare(taps)
        names = [o.name for o in self._session.get_outputs()]
        results = dict(zip(names, self._session.run(None, {"input": x})))
        return {**{cell: results[value] for cell, value in self._taps.items()}, LOGITS: results[LOGITS]}


class MindirRunner:
    """The MINDIR export (fixed batch), reloaded with mindspore.load: logits only, its graph has no taps."""

    name = "mindir"
    description = "the MINDIR export, reloaded"

    def __init__(self, net, metadata: dict, size: int, batch: int, path: str | Path):
        from porting.converters.export import export_ms
        from porting.runtimes import load_mindir

        self.path = export_ms(net, "MINDIR", path, size, batch=batch, metadata=metadata)
        self._run = load_mindir(self.path)

    def infer(self, x: np.ndarray, taps: list[str]) -> dict[str, np.ndarray]:
        return {LOGITS: self._run(x)}
