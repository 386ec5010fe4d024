"""The files a user deploys, behind one call: a normalised NCHW float32 batch in, logits out.

- `.ckpt`: porting's checkpoint, rebuilt and compiled in MindSpore (GRAPH mode), any batch and size;
- `.onnx`: porting's ONNX export in onnxruntime; its preprocessing comes from the metadata_props the export
  wrote, its batch and size from its input (fixed or dynamic);
- `.mindir`: porting's MINDIR through mindspore.load; metadata from its user_info, batch and size fixed.

A fixed batch is filled by splitting and padding (the padding's outputs are dropped); a fixed size that differs
from the requested one is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from porting.errors import PortingError, first_line

KINDS = {".ckpt": "MindSpore checkpoint", ".onnx": "ONNX (onnxruntime)", ".mindir": "MINDIR (MindSpore)"}


class Artifact:
    """A model file ready to run: `artifact(x)` gives logits for any batch of x."""

    def __init__(self, path: Path, kind: str, metadata: dict, run, batch: int | None, size: int | None,
                 props: dict[str, str] | None = None):
        self.path, self.kind, self.metadata, self._run = path, kind, metadata, run
        self.batch, self.size = batch, size  # fixed by the file, or None
        self.props = props or {}  # the metadata as the file stores it (ONNX metadata_props: strings)

    def check_size(self, size: int) -> None:
        if self.size is not None and size != self.size:
            raise PortingError(f"'{self.path}' takes {self.size}x{self.size} inputs, not {size}x{size}: export it "
                               f"with --size {size}, or (ONNX) with --dynamic-size")

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


def _decoded(props: dict[str, str]) -> dict:
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value  # plain strings (source, arch, ...) are stored as they are
    return out


def _validated(metadata: dict, path: Path) -> dict:
    from porting.checkpoint import validate_metadata

    if "arch" not in metadata or "mean" not in metadata:
        raise PortingError(f"'{path}' carries no porting metadata (not written by `porting export`?): its "
                           f"preprocessing is unknown")
    validate_metadata(metadata, path)
    return metadata


def _onnx(path: Path) -> Artifact:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
        raise PortingError(f"cannot load '{path}' in onnxruntime: {first_line(exc)}") from None
    props = dict(session.get_modelmeta().custom_metadata_map)
    metadata = _validated(_decoded(props), path)
    shape = session.get_inputs()[0].shape
    name = session.get_inputs()[0].name
    batch = shape[0] if isinstance(shape[0], int) else None
    size = shape[2] if isinstance(shape[2], int) else None
    return Artifact(path, KINDS[".onnx"], metadata, lambda x: session.run(None, {name: x})[0], batch, size, props)


def load_mindir(path: Path):
    """x (NCHW float32) -> logits through mindspore.load: the one way porting runs a MINDIR (eval, predict,
    parity). Runs in whatever mode the caller set up."""
    import mindspore as ms

    try:
        cell = ms.nn.GraphCell(ms.load(str(path)))
    except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError for bad files
        raise PortingError(f"cannot load '{path}' with mindspore.load: {first_line(exc)}") from None
    return lambda x: cell(ms.Tensor(x)).asnumpy()


def _mindir(path: Path, device: str | None) -> Artifact:
    from porting import msenv
    from porting.converters.export import read_mindir_metadata

    msenv.setup(device, graph=True)
    metadata = _validated(_decoded(read_mindir_metadata(path)), path)
    fixed = metadata.get("export") or {}
    return Artifact(path, KINDS[".mindir"], metadata, load_mindir(path), fixed.get("batch"), fixed.get("size"))


def _ckpt(path: Path, device: str | None) -> Artifact:
    import mindspore as ms

    from porting import checkpoint, msenv

    msenv.setup(device, graph=True)
    net, metadata = checkpoint.load_model(path)
    return Artifact(path, KINDS[".ckpt"], metadata, lambda x: net(ms.Tensor(x)).asnumpy(), None, None)


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
