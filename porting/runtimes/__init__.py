"""Deployment runtimes: what runs a ported model. One module per framework, `<name>_runtime.py`, holds each
runtime's class and its record (registered with @register_runtime: name and aliases, what it runs, whether it
shows inner layers, its precisions and devices, the extra that installs it):

    mindspore_runtime.py   mindspore (a network: a .ckpt, or parity's port), mindir (a MINDIR)
    onnx_runtime.py        ort, alias onnx (onnxruntime's CPU provider)
    openvino_runtime.py    openvino (OpenVINO's CPU plugin, at a stated precision)
    tensorrt_runtime.py    tensorrt (an NVIDIA GPU; skipped in one line without a CUDA device)

Every runtime keeps one contract (base.Runtime: made with what it runs, nothing allocated; open, infer, close;
a context manager), and parity, eval, predict and bench take them as a list (`--runtime ort,openvino`).
Importing porting.runtimes imports every `*_runtime` module found here, which registers them; no framework is
imported until a runtime opens.
"""
import importlib
import pkgutil

from porting.runtimes.base import LOGITS, Runtime  # noqa: F401
from porting.runtimes.registry import (FORMS, RuntimeRecord, all_runtimes, check_precision,  # noqa: F401
                                       choose_runtimes, cuda_devices, precision_takers, register_runtime,
                                       runtime_names, runtime_record)

MODULES = sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name.endswith("_runtime"))
for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
