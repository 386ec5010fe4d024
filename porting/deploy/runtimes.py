"""The files a user deploys, behind one call: a normalised NCHW float32 batch in, logits out.

- `.ckpt`: porting's checkpoint, rebuilt and compiled in MindSpore (GRAPH mode), any batch and size;
- `.onnx`: porting's ONNX export in onnxruntime; its preprocessing comes from the metadata_props the export
  wrote, its batch and size from its input (fixed or dynamic);
- `.mindir`: porting's MINDIR through mindspore.load; metadata from its user_info, batch and size fixed.

A fixed batch is filled by splitting and padding (the padding's outputs are dropped); a fixed size that differs
from the requested one is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from porting.card import ModelCard
from porting.errors import PortingError
from porting.runners.runtime import LOGITS, Runtime

KINDS = {".ckpt": "MindSpore checkpoint", ".onnx": "ONNX (onnxruntime)", ".mindir": "MINDIR (MindSpore)"}


class Artifact(Runtime):
    """A model file ready to run, for any batch of x: `artifact(x)` gives its logits (a file's runtime shows
    no taps)."""

    def __init__(self, path: Path, kind: str, card: ModelCard, run, batch: int | None, size: int | None):
        self.path, self.kind, self.card, self._run = path, kind, card, run
        self.batch, self.size = batch, size  # fixed by the file, or None

    def check_size(self, size: int) -> None:
        if self.size is not None and size != self.size:
            raise PortingError(f"'{self.path}' takes {self.size}x{self.size} inputs, not {size}x{size}: export it "
                               f"with --size {size}, or (ONNX) with --dynamic-size")

    @property
    def name(self) -> str:
        return self.path.suffix[1:]

    @property
    def description(self) -> str:
        return f"{self.kind}: {self.path}"

    def infer(self, x: np.ndarray, taps=()) -> dict[str, np.ndarray]:
        return {LOGITS: self(x)}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if self.batch is None or n == self.batch:
            return self._run(x)
        outs = []
        for start in range(0, n, self.batch):
            chunk = x[start:start + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self._run(chunk)[: self.batch - pad])
        return np.concatenate(outs)


def _onnx(path: Path) -> Artifact:
    from porting.runners.onnx_runtime import OnnxRuntime

    runtime = OnnxRuntime(path)
    card = ModelCard.from_props(runtime.custom_metadata, path)
    shape = runtime.input_shape
    batch = shape[0] if isinstance(shape[0], int) else None
    size = shape[2] if isinstance(shape[2], int) else None
    return Artifact(path, KINDS[".onnx"], card, runtime.logits, batch, size)


def _mindir(path: Path, device: str | None) -> Artifact:
    from porting import msenv
    from porting.converters.export import read_mindir_metadata
    from porting.runners.mindspore_runtime import MindirRuntime

    msenv.setup(device, graph=True)
    card = ModelCard.from_props(read_mindir_metadata(path), path)
    fixed = card.export_options
    return Artifact(path, KINDS[".mindir"], card, MindirRuntime(path).logits, fixed.get("batch"), fixed.get("size"))


def _ckpt(path: Path, device: str | None) -> Artifact:
    from porting import checkpoint, msenv
    from porting.runners.mindspore_runtime import MindSporeRuntime

    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(path)
    return Artifact(path, KINDS[".ckpt"], card, MindSporeRuntime(net).logits, None, None)


def open_artifact(path: Path, device: str | None = None) -> Artifact:
    path = Path(path)
    if not path.is_file():
        raise PortingError(f"model file '{path}' does not exist" if not path.exists() else
                           f"model file '{path}' is not a file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _onnx(path)
    if suffix == ".mindir":
        return _mindir(path, device)
    if suffix == ".air":
        raise PortingError(f"'{path}' is an AIR model: it runs on Ascend through MindSpore Lite / ACL, not here; "
                           f"evaluate the .ckpt, .onnx or .mindir")
    return _ckpt(path, device)
