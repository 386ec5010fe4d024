"""MindSpore process set-up. Importing this imports MindSpore, so TensorFlow and Paddle never load here."""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ logging: errors only

import mindspore as ms  # noqa: E402

_DONE = {"device": None}


def setup(device: str | None = None) -> str:
    """Pick the device once per process: the given one, $PORTING_DEVICE, or the build's own default."""
    device = device or os.environ.get("PORTING_DEVICE") or ms.get_context("device_target")
    if _DONE["device"] != device:
        ms.set_device(device)
        ms.set_context(mode=ms.PYNATIVE_MODE)
        _DONE["device"] = device
    return device


def device() -> str:
    return ms.get_context("device_target")
