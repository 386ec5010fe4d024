"""The files a user deploys, behind one call: a normalised NCHW float32 batch in, logits out.

- `.ckpt`: porting's checkpoint, rebuilt and compiled in MindSpore (GRAPH mode), any batch and size;
- `.onnx`: porting's ONNX export in onnxruntime, or in OpenVINO (`runtime="openvino"`, at a stated precision);
  its preprocessing comes from the metadata_props the export wrote, its batch and size from its input (fixed or
  dynamic);
- `.mindir`: porting's MINDIR through mindspore.load; metadata from its user_info, batch and size fixed.

A fixed batch is filled by splitting and padding (the padding's outputs are dropped); a fixed size that differs
from the requested one is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from porting.card import ModelCard
from porting.errors import PortingError, first_line
from porting.options import RUNTIMES
from porting.runtimes.base import LOGITS, Runtime

KINDS = {".ckpt": "MindSpore checkpoint", ".onnx": "ONNX (onnxruntime)", ".mindir": "MINDIR (MindSpore)"}


class Artifact(Runtime):
    """A model file ready to run, for any batch of x: `artifact(x)` gives its logits (a file's runtime shows
    no taps). `runtime`: what runs it (mindspore, ort, openvino), at `precision` (what the runtime reports)."""

    runtime, precision = "mindspore", "f32"

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


def _onnx(path: Path, runtime: str, precision: str | None) -> Artifact:
    if runtime == "openvino":
        import onnx

        from porting.runtimes.openvino_runtime import OpenVinoRuntime

        # the card from the file's metadata_props; one runtime loads the model, not two
        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own
            raise PortingError(f"cannot read '{path}' as ONNX: {first_line(exc)}") from None
        run = OpenVinoRuntime(path, precision=precision or "f32")
        card, kind = ModelCard.from_props(props, path), f"ONNX (OpenVINO CPU, {run.said()})"
    else:
        from porting.runtimes.onnx_runtime import OnnxRuntime

        run = OnnxRuntime(path)
        card, kind = ModelCard.from_props(run.custom_metadata, path), KINDS[".onnx"]
    shape = run.input_shape
    batch = shape[0] if isinstance(shape[0], int) else None
    size = shape[2] if isinstance(shape[2], int) else None
    artifact = Artifact(path, kind, card, run.logits, batch, size)
    artifact.runtime, artifact.precision = runtime, getattr(run, "precision", "f32")
    return artifact


def _mindir(path: Path, device: str | None) -> Artifact:
    from porting import msenv
    from porting.converters.export import read_mindir_metadata
    from porting.runtimes.mindspore_runtime import MindirRuntime

    msenv.setup(device, graph=True)
    card = ModelCard.from_props(read_mindir_metadata(path), path)
    fixed = card.export_options
    return Artifact(path, KINDS[".mindir"], card, MindirRuntime(path).logits, fixed.get("batch"), fixed.get("size"))


def _ckpt(path: Path, device: str | None) -> Artifact:
    from porting import checkpoint, msenv
    from porting.runtimes.mindspore_runtime import MindSporeRuntime

    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(path)
    return Artifact(path, KINDS[".ckpt"], card, MindSporeRuntime(net).logits, None, None)


def check_runtime(runtime: str, precision: str | None) -> None:
    """--runtime and --precision, before anything loads: OpenVINO takes any of its precisions; onnxruntime's CPU
    provider computes in the file's own types, so it takes none but f32 / default."""
    from porting.runtimes.openvino_runtime import check_precision, require_openvino

    if runtime not in RUNTIMES:
        raise PortingError(f"unknown runtime '{runtime}': use {', '.join(RUNTIMES)}")
    if precision is not None:
        check_precision(precision)
        if runtime == "ort" and precision not in ("default", "f32"):
            raise PortingError(f"--precision {precision} needs --runtime openvino: onnxruntime's CPU provider "
                               f"computes in the file's own precision (export --fp16 for a half-float file)")
    if runtime == "openvino":
        require_openvino()


def open_artifact(path: Path, device: str | None = None, runtime: str = "ort",
                  precision: str | None = None) -> Artifact:
    """The model file, ready to run. `runtime` / `precision` choose how an .onnx runs (ort, or openvino at
    f32 unless said otherwise); other files run in MindSpore and take neither."""
    path = Path(path)
    check_runtime(runtime, precision)
    if not path.is_file():
        raise PortingError(f"model file '{path}' does not exist" if not path.exists() else
                           f"model file '{path}' is not a file")
    suffix = path.suffix.lower()
    if suffix != ".onnx" and (runtime != "ort" or precision is not None):
        raise PortingError(f"--runtime and --precision choose how an .onnx runs; '{path}' runs in MindSpore "
                           f"(export it with porting export --format onnx)")
    if suffix == ".onnx":
        return _onnx(path, runtime, precision)
    if suffix == ".mindir":
        return _mindir(path, device)
    if suffix == ".air":
        raise PortingError(f"'{path}' is an AIR model: it runs on Ascend through MindSpore Lite / ACL, not here; "
                           f"evaluate the .ckpt, .onnx or .mindir")
    return _ckpt(path, device)
