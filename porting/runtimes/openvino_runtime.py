"""OpenVINO as a runtime: porting's ONNX (a file, or parity's traced ModelProto) compiled for OpenVINO's CPU
plugin at a precision that is stated, never assumed.

OpenVINO's CPU plugin chooses its own inference precision: bf16 where the CPU has it (AVX512_BF16 / AMX), f32
elsewhere, f16 only on CPUs with native half floats; asked for a precision the CPU lacks, it runs f32 and says
nothing (PORTING_NOTES.md section 8). So `--precision` sets INFERENCE_PRECISION_HINT ('default' sets none and
lets OpenVINO choose), and `precision` is what the compiled model reports it runs at: that is what reports print.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from porting.errors import PortingError, first_line
from porting.options import PRECISIONS
from porting.runtimes.base import LOGITS, Runtime
from porting.runtimes.registry import register_runtime
from porting.threads import cpu_threads


@contextlib.contextmanager
def _onednn_uncapped():
    """OpenVINO's CPU plugin under the oneDNN ISA cap porting sets for MindSpore's kernels (porting.msenv:
    ONEDNN_MAX_CPU_ISA=AVX2) finds no kernel for its max pools on an AVX-512 + AMX CPU ('Supported primitive
    descriptors list is empty for node ...MaxPool', measured 2026-12-05). Each oneDNN copy reads the variable once,
    at its first use: OpenVINO's reads it unset here, MindSpore's keeps the cap (read before, or after, this)."""
    capped = os.environ.get("PORTING_CAPPED_ONEDNN") == "1" and "ONEDNN_MAX_CPU_ISA" in os.environ
    saved = os.environ.pop("ONEDNN_MAX_CPU_ISA") if capped else None
    try:
        yield
    finally:
        if capped:
            os.environ["ONEDNN_MAX_CPU_ISA"] = saved


def _short(ov_type) -> str:
    """OpenVINO's element type as the hint spells it: 'f32', 'bf16', 'f16'."""
    return ov_type.get_type_name() if hasattr(ov_type, "get_type_name") else str(ov_type)


@register_runtime(name="openvino", title="OpenVINO", runs="onnx", taps=True, precisions=PRECISIONS,
                  default_precision=None, beside=("default",), devices=("CPU",), extra="openvino",
                  package="openvino")
class OpenVinoRuntime(Runtime):
    """An ONNX model on OpenVINO's CPU plugin. `taps` as for OnnxRuntime ({tap name: graph output}); the logits
    are the output named LOGITS, or the first output. `precision`: one of PRECISIONS (what is asked);
    `.precision` is what the compiled model runs at (known once open), `.description` says both."""

    def __init__(self, model, *, taps: dict[str, str] | None = None, precision: str = "f32", what: str = ""):
        self.model, self.what, self.requested = model, what or str(model), precision
        self.taps = dict(taps or {})
        self.name = "openvino" if precision == "f32" else f"openvino-{precision}"
        self.compiled = self.request = self.precision = None

    def open(self) -> OpenVinoRuntime:
        self.record.require()  # a missing extra is one line
        import openvino as ov

        source = str(self.model) if isinstance(self.model, (str, Path)) else self.model.SerializeToString()
        config = {"INFERENCE_NUM_THREADS": cpu_threads()}
        if self.requested != "default":
            config["INFERENCE_PRECISION_HINT"] = self.requested
        try:
            with _onednn_uncapped():
                core = ov.Core()
                self.compiled = core.compile_model(core.read_model(source), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for everything
            raise PortingError(f"cannot load '{self.what}' in OpenVINO: {first_line(exc)}") from None
        self.precision = _short(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()
        self.outputs = {name: port for port in self.compiled.outputs for name in port.get_names()}
        shape = self.compiled.inputs[0].get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in shape]
        self.logits_port = self.outputs.get(LOGITS, self.compiled.outputs[0])
        return self

    def close(self) -> None:
        self.request = self.compiled = self.outputs = self.logits_port = None

    @property
    def description(self) -> str:
        return f"the ONNX export in OpenVINO (CPU, {self.describe_precision()})"

    @property
    def label(self) -> str:
        return f"OpenVINO (CPU, {self.describe_precision()})"

    @property
    def engine(self) -> str:
        return f"OpenVINO CPU, {self.describe_precision()}"

    def describe_precision(self) -> str:
        """The precision run, and why: 'f32', 'bf16: OpenVINO's default on this CPU', 'f32: bf16 asked, ...'."""
        precision = self._opened(self.precision)
        if self.requested == "default":
            return f"{precision}: OpenVINO's default on this CPU"
        if self.requested != precision:
            return f"{precision}: {self.requested} asked, this CPU has no {self.requested}"
        return precision

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        results = self._opened(self.request).infer([np.ascontiguousarray(x)])
        out = {t: np.array(results[self.outputs[self.taps[t]]]) for t in taps
               if t in self.taps and self.taps[t] in self.outputs}
        out[LOGITS] = np.array(results[self.logits_port])
        return out
