"""SE-ResNeXt50 32x4d from timm (resnet.py, its gluon_in1k weights, senet.py legacy; and resnet.py's 101-layer
model) and PaddleClas (plain and vd), ported from seeded weight files written by each library, checked layer by layer.

Sizes: 224 is the models' own size; 200 is even but gives odd maps at stages 3-4 (25x25, 13x13), where the
vd shortcut's AvgPool2D(2, 2, ceil_mode=True) has a partial last window and the stride-2 grouped convs pad
an odd input; timm senet.py's unpadded ceil_mode stem pool (112 -> 56 at 224, 100 -> 50 at 200) would lose a
row and column with floor. MINDIR once per source, on the variants with the unusual pools.
"""
import json

import numpy as np
import pytest
from conftest import assert_agrees_before, assert_openvino, assert_parity, porting, swap_targets

from porting import checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.mark.slow
@pytest.mark.parametrize("spec,suffix,size,batch,mindir", [
    ("timm:seresnext50_32x4d", ".pth", 224, 2, False),
    ("timm:seresnext50_32x4d", ".safetensors", 200, 1, False),
    ("timm:gluon_seresnext50_32x4d", ".pth", 224, 1, False),  # timm's name for seresnext50_32x4d.gluon_in1k
    ("timm:seresnext101_32x4d", ".safetensors", 128, 1, False),  # the deeper variant: one spec, no new code
    # at 200, odd from stride 16 on (224 is even at every stride), where padding differences would show; the
    # 224 cases above prove the default size for the same blocks
    ("timm:legacy_seresnext50_32x4d", ".pth", 200, 1, True),
    ("paddleclas:SE_ResNeXt50_32x4d", ".pdparams", 200, 1, False),
    # keyed by ParamAttr names (conv1_1_weights, fc2_1_sqz_weights...), as PaddleClas's released files are
    ("paddleclas:SE_ResNeXt50_vd_32x4d", ".paramattr.pdparams", 200, 1, True),
])
def test_ckpt_onnx_parity_from_source_files(source_weights, spec, suffix, size, batch, mindir):
    weights = source_weights(spec, suffix)
    openvino = spec == "timm:seresnext50_32x4d" and suffix == ".pth"  # at 224, the README's size
    report = parity(resolve(spec), weights=str(weights), size=size, batch=batch, onnx=True, mindir=mindir,
                    openvino=openvino)
    assert_parity(report, ("mindspore", "onnx") + (("mindir",) if mindir else ()) + (("openvino",) if openvino else ()))
    if openvino:
        assert_openvino(report)
    kinds = {name: r.kind for name, r in report.layers().items()}
    # every bottleneck's SE and output, the stem pool and (vd) every shortcut avg pool were compared
    bottlenecks = sum(resolve(spec).config.layers)  # 16 in the 50-layer models, 33 in the 101
    assert sum(k == "se" for k in kinds.values()) == bottlenecks == sum(k == "block" for k in kinds.values())
    assert sum(k == "pool" for k in kinds.values()) == (4 if "vd" in spec else 1)


def _onnx_run(cell, x):
    """Trace one leaf cell with our ONNX writer and run it in onnxruntime."""
    import onnxruntime as ort

    from porting.converters.onnx_ops import trace

    graph, out = trace(cell, "input")
    model = graph.to_model({"input": list(x.shape)}, {"y": (out, None)})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("height,width", [(7, 7), (13, 12), (25, 25), (112, 112), (113, 114)])
def test_pools_match_pytorch_in_mindspore_both_modes_and_onnx(height, width):
    """The pools of these models, at odd and even sizes (where the max pools switch between MindSpore's 'same'
    pool and -inf rows + a 'valid' pool, and ceil and floor give different shapes), against PyTorch's
    definition, in PYNATIVE and GRAPH mode and in onnxruntime; the parity tests prove them against the sources."""
    import mindspore as ms
    import torch

    from porting.archs.layers import AvgPool2d, MaxPool2d

    x = np.random.default_rng(height * width).normal(size=(2, 3, height, width)).astype(np.float32) - 0.5
    t = torch.from_numpy(x)
    cases = [
        (MaxPool2d(3, 2, 0, ceil_mode=True), torch.nn.functional.max_pool2d(t, 3, 2, 0, ceil_mode=True)),
        (MaxPool2d(3, 2, 1), torch.nn.functional.max_pool2d(t, 3, 2, 1)),
        (MaxPool2d(3, 2, 0), torch.nn.functional.max_pool2d(t, 3, 2, 0)),
        (AvgPool2d(2, 2, 0, ceil_mode=True, count_include_pad=False),
         torch.nn.functional.avg_pool2d(t, 2, 2, 0, ceil_mode=True, count_include_pad=False)),
        (AvgPool2d(3, 1, 1, count_include_pad=False),
         torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)),
    ]
    for cell, ref in cases:
        ref = ref.numpy()
        got = cell(ms.Tensor(x)).asnumpy()
        ms.set_context(mode=ms.GRAPH_MODE)
        try:
            compiled = cell(ms.Tensor(x)).asnumpy()
        finally:
            ms.set_context(mode=ms.PYNATIVE_MODE)
        assert got.shape == ref.shape, (cell.spec, got.shape, ref.shape)
        np.testing.assert_array_equal(got, ref)  # a max is a max; exclusive means divide the same sums
        np.testing.assert_array_equal(compiled, got)
        np.testing.assert_allclose(_onnx_run(cell, x), ref, rtol=0, atol=1e-6)


def test_pool_windows_match_pytorch_shapes():
    """pool_windows (where a padded pool's windows fall) agrees with PyTorch's output size for every case."""
    import torch

    from porting.archs.layers import pool_windows

    for size in range(3, 40):
        for kernel, stride, padding, ceil in ((3, 2, 1, False), (3, 2, 0, True), (2, 2, 0, True), (3, 1, 1, False),
                                              (3, 2, 0, False), (5, 3, 2, True)):
            _, before, after = pool_windows(size, kernel, stride, padding, ceil)
            out = (size + before + after - kernel) // stride + 1
            ref = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, 1), (kernel, 1), (stride, 1), (padding, 0),
                                                 ceil_mode=ceil).shape[2]
            assert out == ref, (size, kernel, stride, padding, ceil)


def test_a_swapped_se_tensor_pair_is_caught_and_named(source_weights):
    """Two same-shaped SE expansion kernels swapped between layer3.1 and layer3.2: parity fails exactly at
    layer3.1's SE, and everything computed before it still agrees."""
    spec = resolve("timm:seresnext50_32x4d")
    wm = build_weight_map(spec)
    a, b = "layer3.1.se.fc2.weight", "layer3.2.se.fc2.weight"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights(spec.id, ".pth")), size=96, batch=1, weight_map=wm)
    assert not report.ok
    failure = report.first_failure()
    assert failure.layer == "layer3.1.se", failure
    assert failure.target == "layer3.1.se"
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
    assert meta.source == "timm:seresnext50_32x4d.gluon_in1k" and meta.arch == "se_resnext"
    assert meta.arch_config == resolve("timm:seresnext50_32x4d").arch_config
    assert meta.config.stem_pool_padding == 1 and not meta.config.se_dense
    assert (meta.mean, meta.std) == IMAGENET and meta.input_size == 224
    assert meta.interpolation == "bicubic" and meta.crop_pct == 0.875
    run = porting("export", tmp_path / "g.ckpt", "--format", "onnx", "-o", tmp_path / "g.onnx")
    assert run.code == 0, run.stderr
    model = onnx.load(str(tmp_path / "g.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["arch_config"]) == meta.arch_config
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
