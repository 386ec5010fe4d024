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
from porting.threads import cpu_threads

INSTALL = "pip install 'porting[openvino]'"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise PortingError(f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")
    return precision


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise PortingError(f"OpenVINO is not installed: {INSTALL} (or run the .onnx with --runtime ort)") from None
    return openvino


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


class OpenVinoRuntime(Runtime):
    """An ONNX model on OpenVINO's CPU plugin. `taps` as for OnnxRuntime ({tap name: graph output}); the logits
    are the output named LOGITS, or the first output. `precision`: one of PRECISIONS (what is asked);
    `.precision` is what the compiled model runs at, `.description` says both."""

    def __init__(self, model, taps: dict[str, str] | None = None, precision: str = "f32", what: str = ""):
        ov = require_openvino()
        self.requested = check_precision(precision)
        source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
        config = {"INFERENCE_NUM_THREADS": cpu_threads()}
        if precision != "default":
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            with _onednn_uncapped():
                core = ov.Core()
                self.compiled = core.compile_model(core.read_model(source), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for everything
            raise PortingError(f"cannot load '{what or model}' in OpenVINO: {first_line(exc)}") from None
        self.precision = _short(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.name = "openvino" if precision == "f32" else f"openvino-{precision}"
        self.request = self.compiled.create_infer_request()
        self.taps = dict(taps or {})
        self.outputs = {name: port for port in self.compiled.outputs for name in port.get_names()}
        first = self.compiled.inputs[0]
        shape = first.get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in shape]
        self.logits_port = self.outputs.get(LOGITS, self.compiled.outputs[0])

    @property
    def description(self) -> str:
        return f"the ONNX export in OpenVINO (CPU, {self.said()})"

    def said(self) -> str:
        """The precision run, and why: 'f32', 'bf16: OpenVINO's default on this CPU', 'f32: bf16 asked, ...'."""
        if self.requested == "default":
            return f"{self.precision}: OpenVINO's default on this CPU"
        if self.requested != self.precision:
            return f"{self.precision}: {self.requested} asked, this CPU has no {self.requested}"
        return self.precision

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        results = self.request.infer([np.ascontiguousarray(x)])
        out = {t: np.array(results[self.outputs[self.taps[t]]]) for t in taps
               if t in self.taps and self.taps[t] in self.outputs}
        out[LOGITS] = np.array(results[self.logits_port])
        return out
