"""MindSpore as a runtime: the one place porting runs a MindSpore network or a MINDIR for inference."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from porting.errors import PortingError, first_line
from porting.runtimes.base import LOGITS, Runtime


class MindSporeRuntime(Runtime):
    """A porting network in the mode msenv set up. Taps (cell paths) are read at porting.archs.layers'
    interception point, which only PYNATIVE reaches; in GRAPH mode ask for the logits alone."""

    name = "mindspore"
    description = "the ported MindSpore model"

    def __init__(self, net):
        self.net = net
        self.paths = {id(cell): name for name, cell in net.cells_and_names() if name}

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        import mindspore as ms

        if not taps:
            return {LOGITS: self.net(ms.Tensor(x)).asnumpy()}
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


class MindirRuntime(Runtime):
    """A MINDIR through mindspore.load (fixed batch and size): logits only, its graph has no taps."""

    name = "mindir"
    description = "the MINDIR export, reloaded"

    def __init__(self, path: str | Path):
        import mindspore as ms

        self.path = Path(path)
        try:
            self._cell = ms.nn.GraphCell(ms.load(str(path)))
        except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError for bad files
            raise PortingError(f"cannot load '{path}' with mindspore.load: {first_line(exc)}") from None

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        import mindspore as ms

        return {LOGITS: self._cell(ms.Tensor(x)).asnumpy()}
