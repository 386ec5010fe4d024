"""Inception-v4 from timm (.pth / .safetensors) and PaddleClas (.pdparams): ckpt + ONNX (+ MINDIR once) parity on
every mapped layer, mapping bugs named at the right layer, 1001-class TF-slim heads, and Keras's missing model.

Sizes: 299 divides exactly at all five stride-2 stages (stem conv, Mixed3a, Mixed5a, Reduction-A/B: 299 -> 149
-> 73 -> 35 -> 17 -> 8), and so does 331, which would prove nothing more. 266 leaves a remainder at every one
of them (266 -> 132 -> 64 -> 30 -> 14 -> 6): each unpadded 3x3/2 conv and max pool drops its last row and
column, as 320 does at only three of the five, at 0.8x the cost of 299. The exclusive 3x3 average pools are
checked at every size (their border windows divide by 4 or 6, not 9).
Batch 1 throughout: InceptionV4 is ~25 GFLOP per image and MindSpore runs on CPU here.
"""
import numpy as np
import pytest
from conftest import assert_agrees_before, assert_openvino, assert_parity, error_line, porting, swap_targets

from porting import api, checkpoint
from porting.proof import parity
from porting.specs import SPECS, build_weight_map, resolve

TIMM, PADDLE = "timm:inception_v4", "paddleclas:InceptionV4"


@pytest.mark.slow
@pytest.mark.parametrize("spec_id,suffix,size,mindir", [
    (TIMM, ".pth", 299, True),
    (TIMM, ".safetensors", 266, False),
    (PADDLE, ".pdparams", 266, False),  # the same blocks as timm's: at the size where padding differences show
])
def test_ckpt_onnx_parity_from_source_files(source_weights, spec_id, suffix, size, mindir):
    spec = resolve(spec_id)
    report = parity(spec, weights=str(source_weights(spec_id, suffix)), size=size, batch=1, onnx=True,
                    mindir=mindir, openvino=mindir)  # OpenVINO where the MINDIR is: timm's .pth at 299
    assert_parity(report, ("mindspore", "onnx", "mindir", "openvino") if mindir else ("mindspore", "onnx"))
    if mindir:
        assert_openvino(report)
    # every mapped layer (each conv, each post-ReLU BN, each pool, each block) was compared, plus the logits
    layers = build_weight_map(spec).layers
    for runtime in ("mindspore", "onnx"):
        assert sum(1 for r in report.rows if r.runtime == runtime) == len(layers) + 1
    assert report.info.size == size


def test_a_swapped_pair_of_1x7_kernels_is_caught_and_named(source_weights):
    """Inception-B #3: branch1's and branch2's 1x7 192->224 kernels have the same shape; swapped, parity must fail
    at the first of them that runs, and everything computed before it must still agree."""
    spec = resolve(TIMM)
    wm = build_weight_map(spec)
    swap_targets(wm, "features.13.branch1.1.conv.weight", "features.13.branch2.2.conv.weight")
    report = parity(spec, weights=str(source_weights(TIMM, ".pth")), size=107, batch=1, weight_map=wm)
    assert not report.ok
    failure = report.first_failure()
    assert failure.layer == "features.13.branch1.1.conv", failure
    assert failure.target == "features.13.branch1.1.conv"
    before = report.rows[: report.rows.index(failure)]
    assert len(before) > 100 and all(r.ok for r in before)


def test_paddle_concat_order_matters_and_is_located(source_weights):
    """The Paddle variant with timm's concat order (pool branch last): every conv inside Inception-A #1 still
    agrees, the block output is the first failure."""
    spec = resolve(PADDLE)
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "pool_branch_first": False}})
    report = parity(wrong, weights=str(source_weights(PADDLE, ".pdparams")), size=107, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.layer == "_inceptionA_1", failure
    assert failure.kind == "block"
    assert_agrees_before(report, failure)


def test_1001_class_head_drops_background_unless_kept(tmp_path):
    import torch

    src = tmp_path / "inception_v4_1001.pth"
    api.random_weights(TIMM, src, seed=3, num_classes=1001)
    head = torch.load(src, weights_only=True)
    w, b = head["last_linear.weight"].numpy(), head["last_linear.bias"].numpy()
    assert w.shape == (1001, 1536)

    said = []  # through the API in this process; the command with --keep-background below
    api.port(TIMM, src, output=tmp_path / "drop.ckpt", log=said.append)
    said = "\n".join(said)
    assert "dropped the TF-slim background class (index 0)" in said and "--keep-background" in said
    params, meta = checkpoint.load(tmp_path / "drop.ckpt")
    np.testing.assert_array_equal(params["fc.weight"], w[1:])
    np.testing.assert_array_equal(params["fc.bias"], b[1:])
    assert meta.num_classes == 1000 and meta.source_num_classes == 1001
    assert meta.background_class == {"index": 0, "kept": False} and not meta.head_reinitialized

    run = porting("port-weights", TIMM, "--weights", src, "--keep-background", "-o", tmp_path / "keep.ckpt")
    assert run.code == 0, run.stderr
    assert "kept" in run.stderr
    params, meta = checkpoint.load(tmp_path / "keep.ckpt")
    np.testing.assert_array_equal(params["fc.weight"], w)
    assert meta.num_classes == 1001 and meta.background_class == {"index": 0, "kept": True}


@pytest.mark.parametrize("name", ["inception_v4", "InceptionV4", "seresnext50_32x4d"])
def test_keras_has_no_such_model(name, tmp_path):
    run = porting("port-weights", f"keras:{name}", "--random-init", "0", "-o", tmp_path / "k.ckpt")
    line = error_line(run)
    assert "Keras" in line and "ships no" in line and name in line
    for spec in SPECS:  # what Keras does offer, and where the model does exist
        if spec.source == "keras":
            assert spec.id in line
    assert ("timm:inception_v4" if "ception" in name else "timm:seresnext50_32x4d") in line
    assert not (tmp_path / "k.ckpt").exists()
