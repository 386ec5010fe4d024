"""TensorRT as a runtime, where an NVIDIA GPU is: porting's ONNX parsed by TensorRT's ONNX parser, built into an
engine for the input shape it is given, run with PyTorch's CUDA tensors as its buffers (no pycuda needed).

TensorRT's precision is the builder's: by default it lets convolutions and matrix products run in TF32 on GPUs
that have it (Ampere and newer), which is not float32; `precision="f32"` clears that flag, `"default"` keeps
TensorRT's own choice, `"f16"` builds from porting's float16 ONNX (export --fp16), whose types TensorRT keeps.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from porting.errors import PortingError
from porting.runtimes.base import LOGITS, Runtime
from porting.runtimes.registry import register_runtime

PRECISIONS = ("default", "f32", "f16")


@register_runtime(name="tensorrt", title="TensorRT", runs="onnx", taps=True, precisions=PRECISIONS,
                  default_precision=None, beside=("default", "f16"), f16_from_file=True, devices=("CUDA",),
                  fixed_batch=True, extra="tensorrt", package="tensorrt")
class TensorRtRuntime(Runtime):
    """An ONNX model (a file or a ModelProto) as a TensorRT engine on CUDA device 0. `taps` as for OnnxRuntime.
    Engines are built on first use, one per input shape; close() frees them."""

    def __init__(self, model, *, taps: dict[str, str] | None = None, precision: str = "f32", what: str = ""):
        if precision not in PRECISIONS:
            raise PortingError(f"unknown TensorRT precision '{precision}': use {', '.join(PRECISIONS)}")
        self.model, self.requested = model, precision
        self.what = what or str(model)
        self.taps = dict(taps or {})
        self.name = "tensorrt" if precision == "f32" else f"tensorrt-{precision}"
        self.engines: dict[tuple, object] | None = None  # one engine per input shape, built on first use
        self.precision = None

    def open(self) -> TensorRtRuntime:
        self.record.require()  # a missing extra is one line
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise PortingError("TensorRT needs a CUDA device, and PyTorch sees none")
        self.trt, self.torch = trt, torch
        model = self.model
        self.onnx = Path(model).read_bytes() if isinstance(model, (str, Path)) else model.SerializeToString()
        self.logger = trt.Logger(trt.Logger.ERROR)
        self.engines = {}
        tf32 = torch.cuda.get_device_capability(0) >= (8, 0)
        self.precision = {"f32": "f32", "f16": "f16", "default": "tf32" if tf32 else "f32"}[self.requested]
        return self

    def close(self) -> None:
        self.engines = self.onnx = None  # the engines' and contexts' device memory goes with them

    @property
    def description(self) -> str:
        return f"the ONNX export in TensorRT ({self.engine.removeprefix('TensorRT ')})"

    @property
    def label(self) -> str:
        return f"TensorRT ({self.engine.removeprefix('TensorRT ')})"

    @property
    def engine(self) -> str:
        return f"TensorRT {self.torch.cuda.get_device_name(0)}, {self.describe_precision()}"

    def describe_precision(self) -> str:
        precision = self._opened(self.precision)
        if self.requested == "default":
            return f"{precision}: TensorRT's default on this GPU"
        return precision

    def _engine(self, shape: tuple):
        engines = self._opened(self.engines)
        if shape in engines:
            return engines[shape]
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.onnx):
            problems = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
            raise PortingError(f"TensorRT cannot parse '{self.what}': {problems}")
        config = builder.create_builder_config()
        if self.requested == "f32":
            config.clear_flag(trt.BuilderFlag.TF32)  # float32 is asked: no TF32 convolutions
        profile = builder.create_optimization_profile()
        first = network.get_input(0)
        profile.set_shape(first.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise PortingError(f"TensorRT could not build an engine for '{self.what}' at input {list(shape)}")
        engine = trt.Runtime(self.logger).deserialize_cuda_engine(serialized)
        engines[shape] = engine, engine.create_execution_context(), first.name
        return engines[shape]

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        engine, context, input_name = self._engine(tuple(x.shape))
        trt, torch = self.trt, self.torch
        context.set_input_shape(input_name, tuple(x.shape))
        buffers = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.zeros(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                buffers[name] = torch.from_numpy(np.ascontiguousarray(x)).to("cuda", dtype)
            else:
                buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise PortingError(f"TensorRT failed to run '{self.what}'")
        stream.synchronize()
        out = {t: buffers[self.taps[t]].float().cpu().numpy() for t in taps
               if t in self.taps and self.taps[t] in buffers}
        logits = LOGITS if LOGITS in buffers else engine.get_tensor_name(engine.num_io_tensors - 1)
        out[LOGITS] = buffers[logits].float().cpu().numpy()
        return out
