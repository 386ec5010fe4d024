"""ONNX Runtime as a runtime: the one place porting opens an onnxruntime session."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from porting.errors import PortingError, first_line
from porting.runtimes.base import LOGITS, Runtime
from porting.runtimes.registry import register_runtime
from porting.threads import cpu_threads


# onnxruntime's CPU provider computes in the file's own types: float32, or float16 for an export --fp16
@register_runtime(name="ort", aliases=("onnx",), title="ONNX Runtime", runs="onnx", taps=True,
                  precisions=("default", "f32"), devices=("CPU",))
class OnnxRuntime(Runtime):
    """An ONNX model (a file, or a ModelProto in memory) on onnxruntime's CPU provider. `taps`: {tap name:
    graph output} for a graph traced with extra outputs (parity's); the logits are the output named LOGITS, or
    the first output of a file that names it otherwise."""

    name = "onnx"  # parity's column, as reports have always named it
    description = "the ONNX export in onnxruntime"

    def __init__(self, model, *, taps: dict[str, str] | None = None, precision: str = "f32", what: str = ""):
        self.model, self.what = model, what or str(model)
        self.taps = dict(taps or {})
        self.session = None

    def open(self) -> OnnxRuntime:
        import onnxruntime as ort

        model = self.model
        source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_threads()
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
            raise PortingError(f"cannot load '{self.what}' in onnxruntime: {first_line(exc)}") from None
        first = self.session.get_inputs()[0]
        self.input_name, self.input_shape = first.name, first.shape
        self.outputs = [o.name for o in self.session.get_outputs()]
        return self

    def close(self) -> None:
        self.session = None

    @property
    def label(self) -> str:
        return "ONNX Runtime (CPU)"

    @property
    def engine(self) -> str:
        return "onnxruntime"

    def metadata_props(self) -> dict[str, str]:
        return dict(self._opened(self.session).get_modelmeta().custom_metadata_map)

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        session = self._opened(self.session)
        wanted = [t for t in taps if t in self.taps]
        names = [self.taps[t] for t in wanted]
        logits = LOGITS if LOGITS in self.outputs else self.outputs[0]
        results = session.run([*names, logits], {self.input_name: x})
        return {**dict(zip(wanted, results)), LOGITS: results[-1]}
