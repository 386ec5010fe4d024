"""MindSpore process set-up. Importing this imports MindSpore, so TensorFlow and Paddle never load here."""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ logging: errors only
# MindSpore 2.10's bundled oneDNN runs every k x k (k > 1) fp32 conv on AVX-512 CPUs with its reference
# kernel (ONEDNN_VERBOSE: jit_uni_ncsp:conv+ref:any), 20-100x slower than the gemm:jit kernel it picks when
# capped at AVX2 (e.g. 192->192 3x3 s2 on 71x71: 2.4 s -> 36 ms). Read by oneDNN at its first primitive.
if "ONEDNN_MAX_CPU_ISA" not in os.environ:
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["PORTING_CAPPED_ONEDNN"] = "1"  # so source workers (torch/TF/Paddle) get their full ISA back

import mindspore as ms  # noqa: E402

_DONE = {"device": None}


def setup(device: str | None = None) -> str:
    """Pick the device once per process: the given one, $PORTING_DEVICE, or the build's own default."""
    device = device or os.environ.get("PORTING_DEVICE") or ms.get_context("device_target")
    if _DONE["device"] != device:
        try:
            ms.set_device(device)
        except RuntimeError:
            # MindSpore already ran here (e.g. an earlier call in the same process): fine if on that device
            if ms.get_context("device_target") != device:
                from porting.errors import PortingError

                raise PortingError(f"MindSpore already runs on {ms.get_context('device_target')} in this process; "
                                   f"cannot switch to {device}") from None
        ms.set_context(mode=ms.PYNATIVE_MODE)
        _DONE["device"] = device
    return device


def device() -> str:
    return ms.get_context("device_target")
