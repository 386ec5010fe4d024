"""SE-ResNeXt50 32x4d from timm (resnet.py, its gluon_in1k weights, senet.py legacy) and PaddleClas (plain
and vd), ported from seeded weight files written by each library, checked layer by layer.

Sizes: 224 is the models' own size; 200 is even but gives odd maps at stages 3-4 (25x25, 13x13), where the
vd shortcut's AvgPool2D(2, 2, ceil_mode=True) has a partial last window and the stride-2 grouped convs pad
an odd input; timm senet.py's unpadded ceil_mode stem pool (112 -> 56 at 224, 100 -> 50 at 200) would lose a
row and column with floor. MINDIR once per source, on the variants with the unusual pools.
"""
import json

import numpy as np
import pytest
from conftest import assert_agrees_before, assert_parity, porting, swap_targets

from porting import checkpoint
from porting.parity import parity
from porting.specs import resolve

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.mark.slow
@pytest.mark.parametrize("spec,suffix,size,batch,mindir", [
    ("timm:seresnext50_32x4d", ".pth", 224, 2, False),
    ("timm:seresnext50_32x4d", ".safetensors", 200, 1, False),
    ("timm:gluon_seresnext50_32x4d", ".pth", 224, 1, False),  # timm's name for seresnext50_32x4d.gluon_in1k
    ("timm:legacy_seresnext50_32x4d", ".pth", 224, 1, True),
    ("timm:legacy_seresnext50_32x4d", ".pth", 200, 1, False),
    ("paddleclas:SE_ResNeXt50_32x4d", ".pdparams", 224, 1, False),
    ("paddleclas:SE_ResNeXt50_32x4d", ".pdparams", 200, 1, False),
    # keyed by ParamAttr names (conv1_1_weights, fc2_1_sqz_weights...), as PaddleClas's released files are
    ("paddleclas:SE_ResNeXt50_vd_32x4d", ".paramattr.pdparams", 224, 1, True),
    ("paddleclas:SE_ResNeXt50_vd_32x4d", ".paramattr.pdparams", 200, 1, False),
])
def test_ckpt_onnx_parity_from_source_files(source_weights, spec, suffix, size, batch, mindir):
    weights = source_weights(spec, suffix)
    report = parity(resolve(spec), weights=str(weights), size=size, batch=batch, onnx=True, mindir=mindir)
    assert_parity(report, ("mindspore", "onnx", "mindir") if mindir else ("mindspore", "onnx"))
    kinds = report.info["layer_kinds"]
    # every bottleneck's SE and output, the stem pool and (vd) every shortcut avg pool were compared
    assert sum(k == "se" for k in kinds.values()) == 16 and sum(k == "block" for k in kinds.values()) == 16
    assert sum(k == "pool" for k in kinds.values()) == (4 if "vd" in spec else 1)


def _onnx_run(cell, x):
    """Trace one leaf cell with our ONNX writer and run it in onnxruntime."""
    import onnxruntime as ort

    from porting.converters.onnx_graph import GraphBuilder, OnnxValue

    graph = GraphBuilder()
    out = cell(OnnxValue(graph, "input"))
    model = graph.to_model({"input": list(x.shape)}, {"y": (out, None)})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("size", [7, 13, 25, 112, 113])
def test_ceil_mode_pools_match_pytorch_in_mindspore_and_onnx(size):
    """The two ceil_mode pools of these models, at sizes where ceil and floor give different shapes (odd for
    2x2/2, even for 3x3/2), against PyTorch's definition; the parity tests prove them against the sources."""
    import mindspore as ms
    import torch

    from porting.models.layers import AvgPool2d, MaxPool2d

    x = np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(np.float32) - 0.5
    t = torch.from_numpy(x)
    cases = [
        (MaxPool2d(3, 2, 0, ceil_mode=True), torch.nn.functional.max_pool2d(t, 3, 2, 0, ceil_mode=True)),
        (MaxPool2d(3, 2, 1), torch.nn.functional.max_pool2d(t, 3, 2, 1)),
        (AvgPool2d(2, 2, 0, ceil_mode=True, count_include_pad=False),
         torch.nn.functional.avg_pool2d(t, 2, 2, 0, ceil_mode=True, count_include_pad=False)),
        (AvgPool2d(3, 1, 1, count_include_pad=False),
         torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)),
    ]
    for cell, ref in cases:
        ref = ref.numpy()
        got = cell(ms.Tensor(x)).asnumpy()
        assert got.shape == ref.shape, (cell.spec, got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(_onnx_run(cell, x), ref, rtol=0, atol=1e-6)


def test_a_swapped_se_tensor_pair_is_caught_and_named(source_weights):
    """Two same-shaped SE expansion kernels swapped between layer3.1 and layer3.2: parity fails exactly at
    layer3.1's SE, and everything computed before it still agrees."""
    spec = resolve("timm:seresnext50_32x4d")
    wm = spec.build_weight_map()
    a, b = "layer3.1.se.fc2.weight", "layer3.2.se.fc2.weight"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights(spec.id, ".pth")), size=96, batch=1, weight_map=wm)
    assert not report.ok
    failure = report.first_failure()
    assert failure.layer == "layer3.1.se", failure
    assert report.info["layers"][failure.layer] == "layer3.1.se"
    assert_agrees_before(report, failure)


def test_a_padded_stem_pool_is_wrong_for_legacy_and_caught_at_pool0(source_weights):
    """senet.py's pool0 (no padding, ceil_mode) and resnet.py's maxpool (padding 1) give the same shape on
    even maps but not the same values: the wrong one fails at pool0, after an agreeing stem."""
    spec = resolve("timm:legacy_seresnext50_32x4d")
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "stem_pool_padding": 1,
                                                            "stem_pool_ceil": False}})
    report = parity(wrong, weights=str(source_weights(spec.id, ".pth")), size=96, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.layer == "pool0", failure
    assert "shape" not in failure.note  # 48 -> 24 either way: the values differ
    assert_agrees_before(report, failure)


def test_vd_without_avg_down_is_caught_at_the_first_strided_shortcut(source_weights):
    spec = resolve("paddleclas:SE_ResNeXt50_vd_32x4d")
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "avg_down": False}})
    report = parity(wrong, weights=str(source_weights(spec.id, ".paramattr.pdparams")), size=96, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.layer.startswith("bb_1_0.short"), failure
    assert_agrees_before(report, failure)


def test_gluon_alias_ports_and_exports_with_its_own_metadata(source_weights, tmp_path):
    import onnx
    import onnxruntime as ort

    pth = source_weights("timm:gluon_seresnext50_32x4d", ".pth")
    run = porting("port-weights", "timm:Gluon_SEResNeXt50_32x4d", "--weights", pth, "-o", tmp_path / "g.ckpt")
    assert run.code == 0, run.stderr
    params, meta = checkpoint.load(tmp_path / "g.ckpt")
    assert len(params) == 331 and params["layer1.0.se.fc1.weight"].shape == (16, 256, 1, 1)
    assert meta["source"] == "timm:seresnext50_32x4d.gluon_in1k" and meta["arch"] == "se_resnext"
    assert meta["arch_config"] == resolve("timm:seresnext50_32x4d").arch_config
    assert meta["arch_config"]["stem_pool_padding"] == 1 and not meta["arch_config"]["se_dense"]
    assert (meta["mean"], meta["std"]) == IMAGENET and meta["input_size"] == 224
    assert meta["interpolation"] == "bicubic" and meta["crop_pct"] == 0.875
    run = porting("export", tmp_path / "g.ckpt", "--format", "onnx", "-o", tmp_path / "g.onnx")
    assert run.code == 0, run.stderr
    model = onnx.load(str(tmp_path / "g.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["arch_config"]) == meta["arch_config"]
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # dynamic batch
        assert session.run(None, {"input": np.zeros((batch, 3, 224, 224), np.float32)})[0].shape == (batch, 1000)


def test_map_lists_every_tensor_with_its_transform():
    run = porting("map", "paddleclas:se_resnext50_vd_32x4d", "--json")
    assert run.code == 0, run.stderr
    rows = json.loads(run.stdout)["rows"]
    assert len(rows) == 341
    by_source = {r["source"]: r for r in rows}
    sqz = by_source["bb_3_0.scale.squeeze.weight"]  # Paddle Linear [in, out] -> Dense [out, in]
    assert sqz["source_shape"] == [2048, 128] and sqz["target_shape"] == [128, 2048]
    assert sqz["target"] == "layer4.0.se.fc1.weight" and sqz["transform"] == "[in,out]->[out,in]"
    assert by_source["conv1_3._conv.weight"]["target"] == "stem.conv3.weight"
    assert by_source["bb_1_0.short._batch_norm._variance"]["target"] == "layer2.0.downsample.bn.moving_variance"
