"""Export a ported checkpoint: ONNX (our own writer, checked), MINDIR, AIR (Ascend only)."""
from __future__ import annotations

import json
from pathlib import Path

import mindspore as ms
import numpy as np

from porting import files
from porting.converters.onnx_graph import GraphBuilder, OnnxValue
from porting.errors import PortingError, first_line

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


def export_onnx(net, metadata: dict, out: str | Path, size: int | None = None, inputs: tuple = ()) -> Path:
    """The checked ONNX file of `net`; `inputs` are files the output must not overwrite."""
    import onnx

    files.check_output(out, inputs, what="ONNX output")
    size = size or int(metadata["input_size"])
    model, _ = trace_onnx(net, metadata, size)
    onnx.checker.check_model(model, full_check=True)
    with files.atomic_output(out, inputs, what="ONNX output") as staged:
        onnx.save(model, str(staged.file))
    return Path(out)


def export_ms(net, fmt: str, out: str | Path, size: int, batch: int = 1, inputs: tuple = ()) -> Path:
    """MINDIR or AIR through ms.export, written in a private folder and moved into place whole.

    The batch is fixed: MindSpore 2.10 exports these graphs with a dynamic batch, but `mindspore.load` of
    the result then fails inside shape inference ("primitive name: raise"), so we never write such a file.
    """
    fmt = fmt.upper()
    suffix = ".mindir" if fmt == "MINDIR" else ".air"
    sample = ms.Tensor(np.zeros([batch, 3, size, size], np.float32))
    with files.atomic_output(out, inputs, what=f"{fmt} output") as staged:
        stem = staged.dir / "model"
        try:
            ms.export(net, sample, file_name=str(stem), file_format=fmt)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError for write failures
            raise PortingError(f"cannot export {fmt} to '{out}': {first_line(exc)}") from None
        staged.file = stem.with_suffix(suffix)
    return Path(out)


def run_mindir(path: str | Path, x: np.ndarray) -> np.ndarray:
    graph = ms.load(str(path))
    return ms.nn.GraphCell(graph)(ms.Tensor(x)).asnumpy()
