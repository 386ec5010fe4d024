"""The files a user deploys, behind one call: a normalised NCHW float32 batch in, logits out, in any runtime of
porting.runtimes that runs that kind of file.

- `.ckpt`: porting's checkpoint, rebuilt and compiled in MindSpore (GRAPH mode), any batch and size;
- `.onnx`: porting's ONNX export in onnxruntime (`ort`, the default), OpenVINO or TensorRT, at a stated
  precision; its preprocessing comes from the metadata_props the export wrote, its batch and size from its input
  (fixed or dynamic);
- `.mindir`: porting's MINDIR through mindspore.load; metadata from its user_info, batch and size fixed.

Several runtimes open the same file side by side (`eval x.onnx --runtime ort,openvino`). A fixed batch is filled
by splitting and padding (the padding's outputs are dropped); a file of a fixed size is fed at that size unless
another is asked for, which is refused.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import numpy as np

from porting import formats
from porting.card import ModelCard
from porting.errors import PortingError, first_line
from porting.images.preprocessing import Preprocessing, preprocessing
from porting.runtimes import (Runtime, RuntimeRecord, all_runtimes, check_precision, choose_runtimes,
                              precision_takers, runtime_record)

# what each file is, as runtimes take it (porting.runtimes.FORMS), and the runtime it runs in unless told
RUNS = {".ckpt": "network", ".onnx": "onnx", ".mindir": "mindir"}
DEFAULT_RUNTIME = {"network": "mindspore", "onnx": "ort", "mindir": "mindir"}
KINDS = {".ckpt": "MindSpore checkpoint", ".mindir": "MINDIR (MindSpore)"}  # an .onnx: 'ONNX (its runtime)'


class Artifact:
    """A model file open in one runtime: `artifact(x)` gives its logits for any batch of x. `runtime`: the
    runtime's name (mindspore, mindir, ort, openvino, tensorrt), `precision`: what it runs at, as it reports.
    Close it (or use it as a context manager) to free what the runtime holds."""

    def __init__(self, path: Path, kind: str, card: ModelCard, runtime: Runtime, batch: int | None,
                 size: int | None):
        self.path, self.kind, self.card, self._runtime = path, kind, card, runtime
        self.batch, self.size = batch, size  # fixed by the file, or None
        self.runtime, self.precision = runtime.record.name, runtime.precision or "f32"

    def check_size(self, size: int) -> None:
        if self.card.fixed_size and size != self.card.fixed_size:
            h, w = self.card.custom_head.map_size
            raise PortingError(f"'{self.path}' takes {self.card.fixed_size}x{self.card.fixed_size} inputs only, not "
                               f"{size}x{size}: its head flattens a {h}x{w} feature map")
        if self.size is not None and size != self.size:
            raise PortingError(f"'{self.path}' takes {self.size}x{self.size} inputs, not {size}x{size}: export it "
                               f"with --size {size}, or (ONNX) with --dynamic-size")

    def preprocessing(self, overrides: dict | None = None) -> Preprocessing:
        """The card's preprocessing with `overrides` (porting.options.Preprocess fields). A file of a fixed size is
        fed at its own size (exported with --size 96: 96), unless --size asks for another, which it refuses."""
        overrides = dict(overrides or {})
        if overrides.get("size") is None and self.size is not None:
            overrides["size"] = self.size
        pre = preprocessing(self.card, **overrides)
        self.check_size(pre.size)
        return pre

    def close(self) -> None:
        self._runtime.close()

    def __enter__(self) -> Artifact:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, run = x.shape[0], self._runtime.logits
        if self.batch is None or n == self.batch:
            return run(x)
        outs = []
        for start in range(0, n, self.batch):
            chunk = x[start:start + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append(run(chunk)[: self.batch - pad])
        return np.concatenate(outs)


def runtimes_for(path: Path, runtimes: Sequence[str] | str | None, precision: str | None,
                 log=lambda msg: None) -> list[RuntimeRecord]:
    """The runtimes that will run `path` (default: its suffix's own), checked before anything loads: known,
    taking `precision`, installed. One that cannot run on this machine (TensorRT without a CUDA device) is an
    error when it is the only one asked, else skipped in one log line."""
    runs = RUNS.get(path.suffix.lower(), "network")  # anything else is read as a checkpoint, which says what's wrong
    records = choose_runtimes(runtimes) or [runtime_record(DEFAULT_RUNTIME[runs])]
    if precision is not None:
        check_precision(precision)
        for record in records:
            if not record.takes(precision):
                raise PortingError(f"--precision {precision} needs --runtime {precision_takers(precision)}: "
                                   f"{record.name} takes {', '.join(record.precisions)}")
    usable = []
    for record in records:
        why = record.unavailable()
        if why and len(records) == 1:
            raise PortingError(f"--runtime {record.name}: {why}")
        if why:
            log(f"{record.name}: skipped, {why}")
            continue
        record.require()
        usable.append(record)
    if not usable:
        raise PortingError(f"none of the runtimes asked can run on this machine ({', '.join(r.name for r in records)})")
    return usable


def _check_runs(path: Path, records: list[RuntimeRecord]) -> None:
    """Each runtime asked runs this kind of file."""
    runs = RUNS.get(path.suffix.lower(), "network")
    for record in records:
        if record.runs == runs:
            continue
        if record.runs == "onnx":
            raise PortingError(f"--runtime and --precision choose how an .onnx runs; '{path}' runs in "
                               f"{DEFAULT_RUNTIME[runs]} (export it with porting export --format onnx)")
        takers = [r.name for r in all_runtimes() if r.runs == runs]
        raise PortingError(f"--runtime {record.name} runs a {'.ckpt' if record.runs == 'network' else '.mindir'}; "
                           f"'{path}' runs in {' or '.join(takers)}")


def open_artifacts(path: Path, device: str | None = None, runtimes: Sequence[str] | str | None = None,
                   precision: str | None = None, log=lambda msg: None) -> list[Artifact]:
    """The model file open in each of `runtimes` (default: the file's own: mindspore for a .ckpt, ort for an
    .onnx, mindir for a .mindir), at `precision` (f32 unless said; 'default': the runtime's own choice)."""
    path = Path(path)
    records = runtimes_for(path, runtimes, precision, log)
    if not path.is_file():
        raise PortingError(f"model file '{path}' does not exist" if not path.exists() else
                           f"model file '{path}' is not a file")
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".mindir"):  # a PNG renamed, timm weights given as a model...: said before any runtime
        formats.check_content(path, "model file")
    elif suffix != ".air":
        formats.check_checkpoint(path, "model file")
    _check_runs(path, records)
    if suffix == ".air":
        raise PortingError(f"'{path}' is an AIR model: it runs on Ascend through MindSpore Lite / ACL, not here; "
                           f"evaluate the .ckpt, .onnx or .mindir")
    with contextlib.ExitStack() as opened:  # a runtime that fails to open closes those opened before it
        if suffix == ".onnx":
            artifacts = _onnx(path, records, precision or "f32", opened)
        elif suffix == ".mindir":
            artifacts = _mindir(path, records, device, opened)
        else:
            artifacts = _ckpt(path, records, device, opened)
        opened.pop_all()
    return artifacts


def open_artifact(path: Path, device: str | None = None, runtime: str | None = None,
                  precision: str | None = None) -> Artifact:
    """The model file open in one runtime (default: the file's own)."""
    return open_artifacts(path, device, [runtime] if runtime else None, precision)[0]


def _onnx(path: Path, records: list[RuntimeRecord], precision: str, opened) -> list[Artifact]:
    runtimes = [opened.enter_context(record.runtime(path, precision=precision, what=str(path)))
                for record in records]
    # the card and the input from a runtime that read them, so one runtime loads the model, not two
    props = next((p for p in (r.metadata_props() for r in runtimes) if p is not None), None)
    shape = next((r.input_shape for r in runtimes if r.input_shape is not None), None)
    if props is None or shape is None:
        props, shape = _read_onnx(path)
    card = ModelCard.from_props(props, path)
    if precision == "f16" and card.export_info.precision != "float16":
        names = [r.name for r in records if r.f16_from_file]
        if names:
            raise PortingError(f"--precision f16 in {names[0]} runs porting's float16 export; '{path}' is "
                               f"{card.export_info.precision or 'float32'}: export it with --fp16")
    batch = shape[0] if isinstance(shape[0], int) else None
    size = shape[2] if isinstance(shape[2], int) else None
    return [Artifact(path, f"ONNX ({r.engine})", card, r, batch, size) for r in runtimes]


def _read_onnx(path: Path) -> tuple[dict[str, str], list]:
    """The file's metadata_props and input shape, read by onnx itself (external weights left on disk)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own
        raise PortingError(f"cannot read '{path}' as ONNX: {first_line(exc)}") from None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return {p.key: p.value for p in model.metadata_props}, [d.dim_value if d.HasField("dim_value") else None
                                                            for d in dims]


def _mindir(path: Path, records: list[RuntimeRecord], device: str | None, opened) -> list[Artifact]:
    from porting import msenv
    from porting.converters.export import read_mindir_metadata

    msenv.setup(device, graph=True)
    card = ModelCard.from_props(read_mindir_metadata(path), path)
    fixed = card.export_info
    return [Artifact(path, KINDS[".mindir"], card, opened.enter_context(record.runtime(path, what=str(path))),
                     fixed.batch, fixed.size) for record in records]


def _ckpt(path: Path, records: list[RuntimeRecord], device: str | None, opened) -> list[Artifact]:
    from porting import checkpoint, msenv

    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(path)
    return [Artifact(path, KINDS[".ckpt"], card, opened.enter_context(record.runtime(net)), None, card.fixed_size)
            for record in records]
