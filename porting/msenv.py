"""MindSpore process set-up. Importing this imports MindSpore, so TensorFlow and Paddle never load here."""
from __future__ import annotations

import logging
import os

from porting.errors import PortingError
from porting.threads import cpu_threads

DEVICES = ("CPU", "GPU", "Ascend")

_VERBOSE = os.environ.get("PORTING_VERBOSE", "") not in ("", "0")
# MindSpore's own log lines (C++ glog and its Python logger): porting reports failures itself, as one line
os.environ.setdefault("GLOG_v", "2" if _VERBOSE else "4")
# MindSpore 2.10's bundled oneDNN runs every k x k (k > 1) fp32 conv on AVX-512 CPUs with its reference
# kernel (ONEDNN_VERBOSE: jit_uni_ncsp:conv+ref:any), 20-100x slower than the gemm:jit kernel it picks when
# capped at AVX2 (e.g. 192->192 3x3 s2 on 71x71: 2.4 s -> 36 ms). Read by oneDNN at its first primitive.
if "ONEDNN_MAX_CPU_ISA" not in os.environ:
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["PORTING_CAPPED_ONEDNN"] = "1"  # so source workers (torch/TF/Paddle) get their full ISA back

import mindspore as ms  # noqa: E402

if not _VERBOSE:
    ms.log._get_logger().setLevel(logging.CRITICAL + 1)

_DONE = {"device": None}


def canonical_device(name: str) -> str:
    for device in DEVICES:
        if name.lower() == device.lower():
            return device
    raise PortingError(f"unknown device '{name}': use {', '.join(DEVICES)}")


def usable_devices() -> list[str]:
    """The devices this MindSpore build can run on here."""
    return [d for d in DEVICES if ms.hal.is_available(d)]


def default_device() -> str:
    """The device a command runs on when none is named: $PORTING_DEVICE, else this MindSpore build's own."""
    return canonical_device(os.environ.get("PORTING_DEVICE") or ms.get_context("device_target"))


def setup(device: str | None = None, graph: bool = False) -> str:
    """Pick the device once per process (the given one, $PORTING_DEVICE, or the build's own default) and the
    execution mode: GRAPH compiles whole networks (eval, predict, finetune: ~2x faster on CPU); PYNATIVE runs
    cell by cell, which parity needs to tap every layer."""
    device = canonical_device(device or os.environ.get("PORTING_DEVICE") or ms.get_context("device_target"))
    mode = ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE
    if _DONE["device"] == device:
        ms.set_context(mode=mode)
        return device
    if _DONE["device"] is not None:
        raise PortingError(f"MindSpore already runs on {_DONE['device']} in this process; cannot switch to {device}")
    if not ms.hal.is_available(device):
        usable = usable_devices()
        raise PortingError(f"--device {device}: this MindSpore installation cannot use a {device} here (no "
                           f"{'CUDA' if device == 'GPU' else 'CANN'} runtime or device found); it can use "
                           f"{', '.join(usable)}")
    try:
        ms.set_device(device)
    except RuntimeError:
        # MindSpore already ran in this process (a test, an earlier call): fine if on that device
        if ms.get_context("device_target") != device:
            raise PortingError(f"MindSpore already runs on {ms.get_context('device_target')} in this process; "
                               f"cannot switch to {device}") from None
    ms.set_context(mode=mode)
    if device == "CPU":
        ms.device_context.cpu.op_tuning.threads_num(cpu_threads())
    _DONE["device"] = device
    return device


def device() -> str:
    return ms.get_context("device_target")
