"""MindSpore as a runtime: the one place porting runs a MindSpore network or a MINDIR for inference."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from porting.errors import PortingError, first_line
from porting.runtimes.base import LOGITS, Runtime
from porting.runtimes.registry import register_runtime

MINDSPORE_DEVICES = ("CPU", "GPU", "Ascend")


def _placement() -> str:
    """'CPU, GRAPH': the device and the mode msenv set up."""
    import mindspore as ms

    from porting import msenv

    return f"{msenv.device()}, {'GRAPH' if ms.get_context('mode') == ms.GRAPH_MODE else 'PYNATIVE'}"


@register_runtime(name="mindspore", title="MindSpore", runs="network", taps=True, precisions=("default", "f32"),
                  devices=MINDSPORE_DEVICES)
class MindSporeRuntime(Runtime):
    """A porting network in the mode msenv set up. Taps (cell paths) are read at porting.archs.layers'
    interception point, which only PYNATIVE reaches; in GRAPH mode ask for the logits alone."""

    name = "mindspore"
    description = "the ported MindSpore model"

    def __init__(self, net, *, taps: dict[str, str] | None = None, precision: str = "f32", what: str = ""):
        self.net = net  # built by the caller; the runtime only runs it
        self.paths: dict[int, str] | None = None

    def open(self) -> MindSporeRuntime:
        self.paths = {id(cell): name for name, cell in self.net.cells_and_names() if name}
        return self

    def close(self) -> None:
        self.paths = None

    @property
    def label(self) -> str:
        return f"MindSpore ({_placement()})"

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        paths = self._opened(self.paths)
        import mindspore as ms

        if not taps:
            return {LOGITS: self.net(ms.Tensor(x)).asnumpy()}
        from porting.archs.layers import intercept

        wanted, outputs = set(taps), {}

        def record(cell, args, call):
            out = call()
            name = paths.get(id(cell))
            if name in wanted:
                outputs[name] = out.asnumpy()
            return out

        with intercept(record):
            logits = self.net(ms.Tensor(x)).asnumpy()
        return {**outputs, LOGITS: logits}


@register_runtime(name="mindir", title="MINDIR", runs="mindir", taps=False, precisions=("default", "f32"),
                  devices=MINDSPORE_DEVICES, fixed_batch=True)
class MindirRuntime(Runtime):
    """A MINDIR through mindspore.load (fixed batch and size): logits only, its graph has no taps."""

    name = "mindir"
    description = "the MINDIR export, reloaded"

    def __init__(self, path: str | Path, *, taps: dict[str, str] | None = None, precision: str = "f32",
                 what: str = ""):
        self.path = Path(path)
        self._cell = None

    def open(self) -> MindirRuntime:
        import mindspore as ms

        try:
            self._cell = ms.nn.GraphCell(ms.load(str(self.path)))
        except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError for bad files
            raise PortingError(f"cannot load '{self.path}' with mindspore.load: {first_line(exc)}") from None
        return self

    def close(self) -> None:
        self._cell = None

    @property
    def label(self) -> str:
        return f"MINDIR (MindSpore {_placement()})"

    @property
    def engine(self) -> str:
        return "MindSpore"

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        cell = self._opened(self._cell)
        import mindspore as ms

        return {LOGITS: cell(ms.Tensor(x)).asnumpy()}
