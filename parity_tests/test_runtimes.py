"""The registry of runtimes (porting.runtimes): each runtime one record and one class with one open / infer /
close contract; the lists --runtime takes (names, aliases, commas, the old flags); every runtime that can run here
opened, run and closed on a tiny ONNX model. A new runtime joins these tests by registering itself."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import porting

from porting.errors import PortingError
from porting.options import PRECISIONS
from porting.runtimes import FORMS, all_runtimes, choose_runtimes, cuda_devices, runtime_record

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("mindspore", "torch", "tensorflow", "paddle", "onnxruntime", "openvino", "tensorrt", "onnx")
XCEPTION = "timm:legacy_xception"


def test_importing_the_runtimes_imports_no_framework():
    """The CLI builds its help from the registry: it must stay as cheap to import as the architectures'."""
    code = ("import sys, porting.runtimes as r; r.all_runtimes(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_runtime_lists_take_names_aliases_commas_and_the_old_flags():
    names = lambda records: [r.name for r in records]  # noqa: E731
    assert names(choose_runtimes(["onnx,openvino", "ORT", " mindir "])) == ["ort", "openvino", "mindir"]
    assert names(choose_runtimes("tensorrt,ort")) == ["tensorrt", "ort"]
    # the old flags, after the list, in the order given; each runtime once
    assert names(choose_runtimes(["openvino"], onnx=True, tensorrt=False, mindir=True, openvino=True)) == [
        "openvino", "ort", "mindir"]
    assert choose_runtimes(None) == choose_runtimes([]) == []
    with pytest.raises(PortingError, match=r"unknown runtime 'tpu': use mindspore, mindir, ort \(onnx\), openvino"):
        choose_runtimes(["ort,tpu"])
    with pytest.raises(PortingError, match="names separated by commas, not 'ort,,openvino'"):
        choose_runtimes(["ort,,openvino"])


@pytest.mark.parametrize("record", all_runtimes(), ids=lambda r: r.name)
def test_each_runtime_is_one_record_and_one_class(record):
    """Its record is whole (what it runs, precisions from the shared list with 'default', an extra pyproject
    declares), its class lives in porting/runtimes/<name>_runtime.py, and making it allocates nothing: a
    model that does not exist is only read at open(), and inferring before open() is a plain error."""
    assert record.runs in FORMS and "default" in record.precisions and set(record.precisions) <= set(PRECISIONS)
    assert set(record.beside) <= set(record.precisions) - {"f32"}
    assert record.cls.record is record and record.cls.__module__.endswith("_runtime")
    assert runtime_record(record.name) is record and all(runtime_record(a) is record for a in record.aliases)
    if record.extra is not None:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert record.extra in extras and record.package
    runtime = record.runtime(None if record.runs == "network" else Path("/nonexistent/model"), precision="f32")
    with pytest.raises(RuntimeError, match="is not open"):
        runtime.infer(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(PortingError, match="does not run at precision 'int4'"):
        record.runtime(None, precision="int4")


def _tiny_onnx(path: Path, batch: int = 1) -> Path:
    """A batchx3x8x8 -> batchx2 ONNX graph (a global average pool and a matmul) with porting's input and output
    names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("record", [r for r in all_runtimes() if r.runs == "onnx"], ids=lambda r: r.name)
def test_each_onnx_runtime_opens_infers_and_closes(record, tmp_path):
    if record.unavailable():
        pytest.skip(f"{record.name}: {record.unavailable()}")
    if not record.installed():
        pytest.skip(f"{record.title} is not installed here")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    expected = x.mean(axis=(2, 3)) @ np.arange(6, dtype=np.float32).reshape(3, 2)
    runtime = record.runtime(_tiny_onnx(tmp_path / "tiny.onnx"), precision="f32")
    with runtime:
        np.testing.assert_allclose(runtime.logits(x), expected, rtol=1e-5)
        assert runtime.describe_precision() == "f32" and runtime.label.startswith(record.title)
    with pytest.raises(RuntimeError, match="is not open"):  # close() freed what open() took
        runtime.logits(x)


def test_a_padded_runtime_answers_as_the_runtime_it_pads(tmp_path):
    """parity gives a runtime of one input shape (its record's fixed_batch: the MINDIR, TensorRT) every chunk
    padded to the largest: the wrapper answers for the real inputs alone, and says what the runtime it wraps says
    (its name, its description, the precision it chose: here OpenVINO's own, never the contract's plain 'f32')."""
    from porting.proof import Padded

    assert [r.name for r in all_runtimes() if r.fixed_batch] == ["mindir", "tensorrt"]
    record = runtime_record("openvino")
    if not record.installed():
        pytest.skip("OpenVINO is not installed here")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    expected = x.mean(axis=(2, 3)) @ np.arange(6, dtype=np.float32).reshape(3, 2)
    with record.runtime(_tiny_onnx(tmp_path / "tiny.onnx", batch=3), precision="default") as runtime:
        padded = Padded(runtime, 3)
        np.testing.assert_allclose(padded.logits(x), expected, rtol=1e-2, atol=1e-2)  # bf16 on CPUs with it
        assert padded.name == runtime.name == "openvino-default" and padded.description == runtime.description
        assert padded.describe_precision() == runtime.describe_precision()
        assert "OpenVINO's default on this CPU" in padded.describe_precision()


def test_parity_takes_a_runtime_list_beside_the_old_flags(tmp_path):
    """`--runtime` names (repeated or comma-separated, aliases too) and the old flags choose the same runtimes:
    the listed ones in their order, then the flags; tensorrt without a CUDA device is one line."""
    if cuda_devices():
        pytest.skip("a CUDA device is here: test_tensorrt_where_a_cuda_device_is runs TensorRT")
    run = porting("parity", XCEPTION, "--random-init", "0", "--size", "96", "--batch", "1", "--runtime",
                  "openvino,tensorrt", "--onnx", "--report", tmp_path / "r.json")
    assert run.code == 0, run.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(dict.fromkeys(row["runtime"] for row in report["rows"])) == ["mindspore", "openvino", "onnx"]
    assert "tensorrt: skipped, no CUDA device on this machine" in run.stdout
