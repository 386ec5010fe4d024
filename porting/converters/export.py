"""Export a ported checkpoint: ONNX (our own writer, checked), MINDIR, AIR (Ascend only)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np

from porting.checkpoint import atomic_path
from porting.converters.onnx_graph import GraphBuilder, OnnxValue
from porting.errors import PortingError

INPUT, OUTPUT = "input", "logits"


def trace_onnx(net, metadata: dict, size: int, taps: list[str] | None = None):
    """The ONNX ModelProto of `net`; with `taps`, those cells' outputs become extra graph outputs.

    Returns (model, {cell name: ONNX output name}).
    """
    graph = GraphBuilder()
    graph.names = {id(cell): name for name, cell in net.cells_and_names() if name}
    logits = net(OnnxValue(graph, INPUT))
    extra, tap_names = [], {}
    for name in taps or []:
        if name not in graph.taps:
            raise PortingError(f"ONNX graph has no layer '{name}'")
        value = graph.taps[name]
        tap_names[name] = OUTPUT if value == logits.name else value
        if value != logits.name and value not in extra:
            extra.append(value)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    model = graph.to_model({INPUT: ["batch", 3, size, size]}, {OUTPUT: (logits, ["batch", int(metadata["num_classes"])])}, extra, meta,
                           graph_name=str(metadata.get("arch", "porting")))
    return model, tap_names


def export_onnx(net, metadata: dict, out: str | Path, size: int | None = None) -> Path:
    import onnx

    size = size or int(metadata["input_size"])
    model, _ = trace_onnx(net, metadata, size)
    onnx.checker.check_model(model, full_check=True)
    tmp = atomic_path(out)
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(out)


def export_ms(net, fmt: str, out: str | Path, size: int, batch: int = 1) -> Path:
    """MINDIR or AIR through ms.export, written to a temporary folder and moved into place whole.

    The batch is fixed: MindSpore 2.10 exports these graphs with a dynamic batch, but `mindspore.load` of
    the result then fails inside shape inference ("primitive name: raise"), so we never write such a file.
    """
    fmt = fmt.upper()
    out = Path(out)
    suffix = ".mindir" if fmt == "MINDIR" else ".air"
    sample = ms.Tensor(np.zeros([batch, 3, size, size], np.float32))
    with tempfile.TemporaryDirectory(prefix=".porting-export-", dir=out.parent if str(out.parent) else ".") as tmp:
        stem = Path(tmp) / "model"
        ms.export(net, sample, file_name=str(stem), file_format=fmt)
        produced = stem.with_suffix(suffix)
        if not produced.exists():
            raise PortingError(f"MindSpore wrote no {fmt} file")
        shutil.move(str(produced), out)
    return out


def run_mindir(path: str | Path, x: np.ndarray) -> np.ndarray:
    graph = ms.load(str(path))
    return ms.nn.GraphCell(graph)(ms.Tensor(x)).asnumpy()
