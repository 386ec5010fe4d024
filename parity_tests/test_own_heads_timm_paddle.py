"""Models with the user's own head from timm and PaddleClas (issue 32): state dicts carry no graph, so `--head`
describes it and the file's tensors check it.

The files are the ones users have: a timm SE-ResNeXt50 whose `fc` they replaced by an nn.Sequential, a headless
timm Xception (num_classes=0), a PaddleClas SE-ResNeXt50 whose `out` is a paddle Sequential and one without it;
seeded random weights written by the library itself (api.random_weights with the head), then read into the model
as the user builds it, in their own two lines, to prove that they are that model's files. Small inputs (64 and 96
px), one parity each; the error cases run the CLI where its one line is the point.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import assert_parity, error_line, porting

from porting import api
from porting.errors import PortingError
from porting.sources.head_option import found_layers, suggestion

TIMM_HEAD = "linear:256,relu,dropout:0.3,linear:5"
PADDLE_HEAD = "linear:256,bn,relu,dropout:0.3,linear:5"


@pytest.fixture(scope="module")
def files(work):
    """{name: path} of the four seeded files, written by their libraries with the head described."""
    made = {}

    def make(name: str, spec: str, suffix: str, head: str, seed: int):
        if name not in made:
            made[name] = api.random_weights(spec, work / f"{name}{suffix}", seed=seed, head=head)
        return made[name]

    return make


def _timm_user_model(name: str, head: bool):
    """The model as the user built it: timm's, its fc replaced (or num_classes=0)."""
    import timm
    import torch
    from torch import nn

    if not head:
        return timm.create_model(name, pretrained=False, num_classes=0).eval()
    model = timm.create_model(name, pretrained=False, num_classes=5)
    model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 5))
    torch.manual_seed(0)
    return model.eval()


def _head_kinds(report) -> list[str]:
    return [name for name, row in report.layers().items() if row.kind == "head"]


def test_a_timm_sequential_head_ports_proves_and_goes_back_in_the_users_keys(files, work):
    import torch

    spec = "timm:seresnext50_32x4d"
    weights = files("sx_head", spec, ".pth", TIMM_HEAD, 11)
    user = _timm_user_model("seresnext50_32x4d", head=True)
    user.load_state_dict(torch.load(weights), strict=True)  # the file is the user's model's

    report = api.parity(spec, weights, head=TIMM_HEAD, size=64, onnx=True)
    assert_parity(report, ("mindspore", "onnx"))
    assert _head_kinds(report) == ["fc.0", "fc.1", "fc.2", "fc.3"]  # every head layer, in order

    rows = {r.source: r for r in api.weight_map(spec, head=TIMM_HEAD).rows}  # what `porting map` lists
    assert [(r.target, r.target_shape) for k, r in rows.items() if k.startswith("fc.")] == [
        ("fc.0.weight", [256, 2048]), ("fc.0.bias", [256]), ("fc.3.weight", [5, 256]), ("fc.3.bias", [5])]

    ckpt = work / "sx_head.ckpt"
    ported = api.port(spec, weights, head=TIMM_HEAD, output=ckpt)
    assert ported.card.num_classes == 5 and ported.card.custom_head.num_classes == 5
    assert [layer.name for layer in ported.card.custom_head.layers] == ["fc.0", "fc.1", "fc.2", "fc.3"]
    # the port computes what the user's own model computes (not only the model the worker built from --head)
    import mindspore as ms

    net, _ = api.load(ckpt)
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = user(torch.from_numpy(x)).numpy()
    got = net(ms.Tensor(x)).asnumpy()
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())

    with pytest.raises(PortingError, match="a timm model folder holds its standard classifier only"):
        api.export_to(ckpt, work / "sx_head_folder", "timm")  # its config.json would build timm's Linear
    assert not (work / "sx_head_folder").exists()
    # as fine-tuning leaves it: with its class folders' names, which a state dict has no place for
    from porting import checkpoint

    params, card = checkpoint.load(ckpt)
    named = work / "sx_head_named.ckpt"
    checkpoint.save(params, named, card.replace(class_names=["a", "b", "c", "d", "e"]))
    back = work / "sx_head_back.pth"
    report, _, _ = api.export_to(named, back, "timm", size=64, batch=1)
    assert report.ok
    written, source = torch.load(back), torch.load(weights)
    assert sorted(written) == sorted(source)  # the user's own keys: fc.0.weight ... fc.3.bias
    _timm_user_model("seresnext50_32x4d", head=True).load_state_dict(written, strict=True)
    assert all(torch.equal(written[k], source[k]) for k in source if not k.endswith("num_batches_tracked"))


def test_on_labelled_photos_the_port_gives_the_users_models_top1_for_every_image(files, tiny_data):
    """The 12 labelled images of the tiny data set (3 classes), preprocessed as the port evaluates them."""
    weights = files("sx_head", "timm:seresnext50_32x4d", ".pth", TIMM_HEAD, 11)
    report = api.parity("timm:seresnext50_32x4d", weights, head=TIMM_HEAD, images=tiny_data / "val", batch=12,
                        size=64)
    assert report.first_failure() is None and report.top1_agree["mindspore"] == 1.0
    assert report.info.batch == 12 and _head_kinds(report) == ["fc.0", "fc.1", "fc.2", "fc.3"]


def test_a_timm_head_file_without_head_or_with_another_is_one_line_naming_its_tensors(files, work):
    weights = files("sx_head", "timm:seresnext50_32x4d", ".pth", TIMM_HEAD, 11)
    out, before = work / "refused.ckpt", sorted(work.iterdir())
    line = error_line(porting("port-weights", "timm:seresnext50_32x4d", "--weights", weights, "-o", out))
    assert "fc.0.weight [256, 2048]" in line and "fc.3.weight [5, 256]" in line, line
    assert "--head linear:256,?,?,linear:5" in line and "likely --head linear:256,relu,dropout:P,linear:5" in line
    line = error_line(porting("port-weights", "timm:seresnext50_32x4d", "--weights", weights, "-o", out,
                              "--head", "linear:256,relu,linear:5"))
    assert line.startswith("error: --head linear:256,relu,linear:5 does not fit") and "fc.2.weight [5, 256]" in line
    assert sorted(work.iterdir()) == before  # nothing written, nothing left behind


def test_a_headless_timm_xception_ports_as_a_feature_extractor(files, work):
    import torch

    spec = "timm:legacy_xception"
    weights = files("xception_none", spec, ".safetensors", "none", 12)
    from safetensors.torch import load_file

    _timm_user_model("legacy_xception", head=False).load_state_dict(load_file(weights), strict=True)
    report = api.parity(spec, weights, head="none", size=96)
    failure = report.first_failure()
    assert failure is None, failure
    assert len(report.layers("mindspore")) > 10 and not _head_kinds(report)
    ckpt = work / "xception_none.ckpt"
    card = api.port(spec, weights, head="none", output=ckpt).card
    assert card.headless and card.num_classes == 0
    # without --head the file is refused, and the line says how to read it
    line = error_line(porting("port-weights", spec, "--weights", weights, "-o", work / "x.ckpt"))
    assert "no fc.* tensors" in line and "--head none" in line
    # a target that cannot hold the head: one line, nothing written
    line = error_line(porting("export", ckpt, "--to", "mindcv:xception", "-o", work / "m.ckpt"))
    assert "cannot hold the checkpoint's head" in line and not (work / "m.ckpt").exists()


PADDLE_USER = textwrap.dedent("""
    import sys, numpy as np, paddle
    from porting.sources.paddleclas.runner import model_factory
    model = model_factory("SE_ResNeXt50_32x4d")(class_num=1000)
    model.out = paddle.nn.Sequential(paddle.nn.Linear(2048, 256), paddle.nn.BatchNorm1D(256), paddle.nn.ReLU(),
                                     paddle.nn.Dropout(0.3), paddle.nn.Linear(256, 5))
    written, source = (paddle.load(p, return_numpy=True) for p in sys.argv[1:3])
    missing, unexpected = model.set_state_dict({k: paddle.to_tensor(v) for k, v in written.items()})
    assert not missing and not unexpected, (missing, unexpected)
    assert sorted(written) == sorted(source), sorted(set(written) ^ set(source))
    assert all(np.array_equal(written[k], source[k]) for k in source)
    print("ok")
""")


def test_a_paddleclas_custom_head_ports_proves_and_goes_back_bit_exact(files, work):
    spec = "paddleclas:SE_ResNeXt50_32x4d"
    weights = files("paddle_head", spec, ".pdparams", PADDLE_HEAD, 13)
    report = api.parity(spec, weights, head=PADDLE_HEAD, size=64, onnx=True)
    assert_parity(report, ("mindspore", "onnx"))
    assert _head_kinds(report) == [f"out.{i}" for i in range(5)]
    # one training step of the user's model, its head's BatchNorm1D (Paddle's biased batch variance) included
    step = api.train_step_parity(spec, weights, head=PADDLE_HEAD, size=64, batch=2)
    assert step.ok, step.first_failure()
    assert {"fc.0.weight", "fc.1.moving_variance", "fc.4.bias"} <= {r.target for r in step.rows}  # MindSpore's
    ckpt = work / "paddle_head.ckpt"
    api.port(spec, weights, head=PADDLE_HEAD, output=ckpt)
    back = work / "paddle_head_back.pdparams"
    report, _, _ = api.export_to(ckpt, back, "paddleclas", size=64, batch=1)
    assert report.ok
    # the user's paddle model takes the file (set_state_dict), every tensor as it was (Paddle in its own process)
    run = subprocess.run([sys.executable, "-c", PADDLE_USER, str(back), str(weights)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


def test_a_headless_paddleclas_model_ports_as_a_feature_extractor(files):
    spec = "paddleclas:SE_ResNeXt50_32x4d"
    weights = files("paddle_none", spec, ".pdparams", "none", 14)
    report = api.parity(spec, weights, head="none", size=64)
    assert report.first_failure() is None and len(report.layers("mindspore")) > 10
    with pytest.raises(PortingError, match=r"holds no classifier \(no out\.\* tensors\).*--head none"):
        api.port(spec, weights)


@pytest.mark.parametrize("args,expected", [
    (["mindcv:xception", "--random-init", "0", "--head", "none"], "mindcv:xception ports with its library's "
                                                                   "standard head only"),
    (["keras:xception", "--random-init", "0", "--head", "none"], "keras:xception reads its head from the weights "
                                                                 "file itself"),
    (["timm:legacy_xception", "--head", "none"], "--head describes your weights file"),
    (["timm:legacy_xception", "--random-init", "0", "--head", "linear:5,conv"], "cannot read 'conv'"),
])
def test_a_head_where_it_cannot_be_is_refused_before_any_work(tmp_path, args, expected):
    line = error_line(porting("port-weights", *args, "-o", tmp_path / "m.ckpt"))
    assert expected in line, line
    assert not list(tmp_path.iterdir())


def test_the_file_shows_its_layers_and_the_gaps_between_them():
    """What the one-line error builds on: the Sequential's modules from the tensors, '?' for the ones without."""
    shapes = {"fc.1.weight": (256, 2048), "fc.1.bias": (256,), "fc.2.running_var": (256,),
              "fc.2.running_mean": (256,), "fc.2.weight": (256,), "fc.2.bias": (256,), "fc.5.weight": (5, 256)}
    found = found_layers(shapes, "fc", dense_in_out=False, bn_stat="running_var")
    assert [(f.index, f.kind, f.units, f.bias) for f in found] == [
        (1, "dense", 256, True), (2, "batchnorm", 256, True), (5, "dense", 5, False)]
    assert suggestion(found) == ("?,linear:256,bn,?,?,linear:5:nobias",
                                 "dropout:P,linear:256,bn,relu,dropout:P,linear:5:nobias")
    # Paddle stores a Linear [in, out]; the standard head (fc.weight, fc.bias) is no Sequential
    assert found_layers({"out.0.weight": (2048, 7)}, "out", dense_in_out=True, bn_stat="_variance")[0].units == 7
    assert found_layers({"fc.weight": (5, 2048), "fc.bias": (5,)}, "fc", False, "running_var") is None


def test_a_checkpoints_head_goes_where_its_target_can_hold_it():
    """export --to's head for the target (no framework): renumbered at the target's classifier, a Keras layout
    only back to Keras, nothing to mindcv or the model zoo."""
    from porting.heads import Head, HeadLayer
    from porting.sources.head_option import head_for_target
    from porting.specs import resolve

    paddle = Head("avg", (HeadLayer("dense", "out.0", units=8), HeadLayer("activation", "out.1", activation="relu"),
                          HeadLayer("dense", "out.2", units=3)), features=2048)
    to_timm = head_for_target(resolve("timm:seresnext50_32x4d"), paddle, "paddleclas:SE_ResNeXt50_32x4d")
    assert [layer.name for layer in to_timm.layers] == ["fc.0", "fc.1", "fc.2"] and to_timm.features == 2048
    keras = Head("avg", (HeadLayer("dense", "dense", units=6),), features=2048, layout="keras-nested")
    with pytest.raises(PortingError, match="laid out 'keras-nested': it goes back to keras"):
        head_for_target(resolve("timm:legacy_xception"), keras, "keras:xception")
    assert head_for_target(resolve("keras:xception"), keras, "keras:xception") is keras
    with pytest.raises(PortingError, match="mindcv:xception cannot hold the checkpoint's head"):
        head_for_target(resolve("mindcv:xception"), keras, "keras:xception")
