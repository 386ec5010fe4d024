"""timm legacy_xception: the foundation's end-to-end proof, from real .pth / .safetensors files."""
import json
import os

import numpy as np
import pytest
from conftest import assert_agrees_before, assert_openvino, assert_parity, error_line, porting, swap_targets

from porting import api, checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve

SPEC = "timm:legacy_xception"


@pytest.mark.slow
@pytest.mark.parametrize("size", [299, 256])  # 256 is even: it exposes pool/conv padding differences
def test_ckpt_onnx_mindir_parity_from_pth(source_weights, size):
    """At 299 also in OpenVINO: what `parity timm:xception --onnx --openvino` checks."""
    pth = source_weights(SPEC, ".pth")
    report = parity(resolve(SPEC), weights=str(pth), size=size, batch=2, onnx=True, mindir=True,
                    openvino=size == 299)
    assert_parity(report, ("mindspore", "onnx", "mindir") + (("openvino",) if size == 299 else ()))
    if size == 299:
        assert_openvino(report)
    assert report.info.size == size


def test_parity_builds_the_network_once_and_traces_onnx_once(monkeypatch):
    """What `porting parity timm:xception --random-init 0 --onnx --openvino --mindir` does: one MindSpore
    network (port's, filled from the round-tripped .ckpt), one ONNX trace (the export file and the tapped graph
    that onnxruntime and OpenVINO run are the same trace), one onnxruntime session, and every runtime compared
    once; --tensorrt without a CUDA device is one line saying it was skipped."""
    from porting.report import verdict
    from porting.runtimes import cuda_devices

    import onnxruntime as ort

    from porting.archs.xception.model import Xception
    from porting.converters import onnx_ops

    counts = {"net": 0, "trace": 0, "session": 0}

    def counted(key, fn):
        def wrapper(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(Xception, "__init__", counted("net", Xception.__init__))
    monkeypatch.setattr(onnx_ops, "trace", counted("trace", onnx_ops.trace))
    monkeypatch.setattr(ort, "InferenceSession", counted("session", ort.InferenceSession))
    if cuda_devices():
        pytest.skip("a CUDA device is here: test_tensorrt_where_a_cuda_device_is runs TensorRT")
    report = parity(resolve("timm:xception"), seed=0, size=96, batch=1, onnx=True, mindir=True, openvino=True,
                    tensorrt=True)
    assert_parity(report, ("mindspore", "onnx", "openvino", "mindir"))
    assert_openvino(report)
    assert counts == {"net": 1, "trace": 1, "session": 1}
    assert [r.runtime for r in report.rows if r.kind == "logits"] == ["mindspore", "onnx", "openvino", "mindir"]
    lines = verdict(report)
    assert "tensorrt: skipped, no CUDA device on this machine" in lines
    assert any(line.startswith("openvino at its default precision (") for line in lines)


def test_tensorrt_where_a_cuda_device_is():
    """TensorRT at f32 (TF32 off) layer by layer; its TF32 default and the fp16 export reported beside."""
    from porting.runtimes import cuda_devices

    if not cuda_devices():
        pytest.skip("no CUDA device on this machine")
    report = parity(resolve("timm:xception"), seed=0, size=299, batch=2, onnx=True, tensorrt=True)
    assert_parity(report, ("mindspore", "onnx", "tensorrt"))
    assert len(report.layers("tensorrt")) == len(report.layers("mindspore"))
    beside = report.info.default_precision
    assert {"tensorrt-default", "tensorrt-f16"} <= set(beside), beside
    assert beside["tensorrt-f16"].top1_agree == 1.0, beside


def test_a_swapped_tensor_pair_is_caught_and_named(source_weights, tmp_path):
    """Two same-shaped pointwise kernels swapped inside block5: parity must fail exactly there."""
    spec = resolve(SPEC)
    wm = build_weight_map(spec)
    a, b = "block5.rep.1.pointwise.weight", "block5.rep.4.pointwise.weight"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights(SPEC, ".pth")), size=160, batch=1, weight_map=wm)
    assert not report.ok
    failure = report.first_failure()
    assert failure.layer == "block5.rep.1", failure
    assert failure.target == "features.block5.rep.sep1"
    # everything before the broken layer still agrees
    assert_agrees_before(report, failure)
    # a saved report loads back typed (rows keep their MindSpore cell and kind) and plots the same
    from porting.report import Report, plot

    saved = Report.from_json(report.to_json())
    assert saved == report and saved.first_failure().target == "features.block5.rep.sep1"
    assert plot(saved, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_a_wrong_bn_eps_is_caught_at_a_batchnorm(source_weights):
    spec = resolve(SPEC)
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "bn_eps": 1e-3}})
    report = parity(wrong, weights=str(source_weights(SPEC, ".pth")), size=160, batch=1)
    failure = report.first_failure()
    assert failure is not None
    assert failure.kind == "bn", failure
    assert_agrees_before(report, failure)


def test_pth_and_safetensors_port_to_the_same_checkpoint(source_weights, tmp_path):
    pth, st = source_weights(SPEC, ".pth"), source_weights(SPEC, ".safetensors")
    for src, out in ((pth, "a.ckpt"), (st, "b.ckpt")):
        api.port("timm:xception", src, output=tmp_path / out)
    pa, ma = checkpoint.load(tmp_path / "a.ckpt")
    pb, mb = checkpoint.load(tmp_path / "b.ckpt")
    assert pa.keys() == pb.keys() and len(pa) == 236
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    assert ma.source_sha256 != mb.source_sha256


def test_metadata_round_trip_through_ckpt_and_onnx(source_weights, tmp_path):
    import onnx
    import onnxruntime as ort

    from porting.converters.port import sha256

    pth = source_weights(SPEC, ".pth")
    assert porting("port-weights", "timm:Xception", "--weights", pth, "-o", tmp_path / "x.ckpt").code == 0
    _, meta = checkpoint.load(tmp_path / "x.ckpt")
    assert meta.source == "timm:legacy_xception" and meta.arch == "xception"
    assert meta.arch_config == {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1}
    assert meta.num_classes == 1000 and meta.input_size == 299
    assert meta.mean == [0.5] * 3 and meta.std == [0.5] * 3
    assert meta.interpolation == "bicubic" and meta.crop_pct == 0.8975
    assert meta.source_sha256 == sha256(str(pth)) and meta.tool_version
    # export needs no flag beyond the checkpoint
    run = porting("export", tmp_path / "x.ckpt", "--format", "onnx", "-o", tmp_path / "x.onnx")
    assert run.code == 0, run.stderr
    model = onnx.load(str(tmp_path / "x.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["source"] == "timm:legacy_xception" and json.loads(props["arch_config"]) == meta.arch_config
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    # nodes and initializers carry the MindSpore cell path they come from (what Netron / Polygraphy show)
    nodes = {n.name: n.op_type for n in model.graph.node}
    assert nodes["features.block1.rep.sep1.depthwise/Conv"] == "Conv" and nodes["fc/Gemm"] == "Gemm"
    assert nodes["features.block1/Add"] == "Add"
    assert {"features.block1.rep.sep1.depthwise.weight", "features.bn1.moving_variance", "fc.bias"} <= {
        i.name for i in model.graph.initializer}
    session = ort.InferenceSession(str(tmp_path / "x.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # dynamic batch
        x = np.zeros((batch, 3, 299, 299), np.float32)
        assert session.run(None, {"input": x})[0].shape == (batch, 1000)


def test_air_needs_ascend_and_writes_nothing(source_weights, tmp_path):
    assert porting("port-weights", SPEC, "--weights", source_weights(SPEC, ".pth"), "-o", tmp_path / "x.ckpt").code == 0
    run = porting("export", tmp_path / "x.ckpt", "--format", "air", "-o", tmp_path / "x.air")
    line = error_line(run)
    assert "Ascend" in line and "mindir" in line.lower() and "onnx" in line.lower()
    assert os.listdir(tmp_path) == ["x.ckpt"]


def test_aliases_and_unknown_names():
    assert resolve("timm:xception").name == "legacy_xception"
    assert resolve("TIMM:Legacy_Xception").name == "legacy_xception"
    run = porting("port-weights", "timm:nosuchnet", "--random-init", "0")
    assert "timm:legacy_xception" in error_line(run)


def test_num_classes_reinitialises_the_head(tmp_path):
    run = porting("port-weights", "timm:xception", "--random-init", "0", "--num-classes", "7", "-o", tmp_path / "h.ckpt")
    assert run.code == 0, run.stderr
    assert "re-initialised head 'fc' for 7 classes" in run.stderr
    params, meta = checkpoint.load(tmp_path / "h.ckpt")
    assert params["fc.weight"].shape == (7, 2048) and meta.num_classes == 7 and meta.head_reinitialized


def test_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    run = porting("port-weights", "timm:xception", "--weights", broken, "-o", tmp_path / "out.ckpt")
    assert "broken.pth" in error_line(run)
    import torch
    torch.save({"conv1.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pth")
    run = porting("port-weights", "timm:xception", "--weights", tmp_path / "partial.pth", "-o", tmp_path / "out.ckpt")
    line = error_line(run)
    assert "partial.pth" in line and "missing" in line
    assert not (tmp_path / "out.ckpt").exists()
    assert sorted(os.listdir(tmp_path)) == ["broken.pth", "partial.pth"]


def test_offline_pretrained_download_names_weights_flag(tmp_path):
    run = porting("port-weights", "timm:xception", "-o", tmp_path / "p.ckpt",)
    if run.code == 0:
        pytest.skip("online: timm's pretrained download worked")
    assert "--weights" in error_line(run) and not (tmp_path / "p.ckpt").exists()
